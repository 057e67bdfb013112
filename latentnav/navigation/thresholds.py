"""Thresholds of the energy terms from data (DESIGN.md §3): percentiles over encoded images.

τ for :class:`~latentnav.navigation.energy.Density` (a low percentile of log q, so only points in
thinner regions than that share of real data are pushed) and κ for
:class:`~latentnav.navigation.energy.Cycle` (a percentile of the cycle error of real data).
"""

from __future__ import annotations

import torch
from torch import nn

from latentnav.navigation.energy import cycle_error, log_q

__all__ = ["log_q_threshold", "cycle_threshold", "encoded_statistics"]


def _check_percentile(percentile: float) -> None:
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")


@torch.no_grad()
def encoded_statistics(
    aae: nn.Module, compass: nn.Module | None, images: torch.Tensor, batch_size: int = 4096
) -> dict[str, torch.Tensor]:
    """One pass over ``images`` (N, *image_shape): ``z`` = E(x) (N, d) on the AAE's device,
    ``cycle`` = ‖E(G(z)) − z‖² and (with a compass) ``log_q`` = log q(z), each (N,) float64 on
    the CPU."""
    device = next(aae.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {"z": [], "cycle": [], "log_q": []}
    for x in images.split(batch_size):
        z = aae.encoder(x.to(device))
        parts["z"].append(z)
        parts["cycle"].append(cycle_error(aae.encoder, z, aae.decoder(z)).double().cpu())
        if compass is not None:
            parts["log_q"].append(log_q(compass, aae.prior, z).double().cpu())
    return {k: torch.cat(v) for k, v in parts.items() if v}


@torch.no_grad()
def _log_q_only(aae, compass, images, batch_size) -> torch.Tensor:
    device = next(aae.parameters()).device
    return torch.cat(
        [
            log_q(compass, aae.prior, aae.encoder(x.to(device))).double().cpu()
            for x in images.split(batch_size)
        ]
    )


def log_q_threshold(
    aae: nn.Module,
    compass: nn.Module,
    images: torch.Tensor,
    percentile: float = 5.0,
    batch_size: int = 4096,
) -> float:
    """The ``percentile``-th percentile of log q over encoded ``images`` (N, *image_shape): a
    hinge threshold τ below which only that share of real (encoded) data lies."""
    _check_percentile(percentile)
    values = _log_q_only(aae, compass, images, batch_size)
    return float(torch.quantile(values, percentile / 100))


def cycle_threshold(
    aae: nn.Module, images: torch.Tensor, percentile: float = 50.0, batch_size: int = 4096
) -> float:
    """The ``percentile``-th percentile of ‖E(G(z)) − z‖², z = E(x), over ``images``: a
    cycle tolerance κ that real (encoded) data meets that often."""
    _check_percentile(percentile)
    values = encoded_statistics(aae, None, images, batch_size)["cycle"]
    return float(torch.quantile(values, percentile / 100))
