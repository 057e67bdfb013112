"""Scale-free energy weights from statistics of the training data (DESIGN.md §3; issue 12).

The label-free energy's terms carry units: Smoothness and MaxJump pixel², Density nats of log q,
Cycle latent². Their weights tuned on one model (MNIST d = 8) do not transfer to another latent
size or data set, because the units' sizes change with both. :class:`PathScales` measures each
unit once on encoded training images:

    S₀  median over random data pairs of SLERP's decoded-path energy T · Σ_k Δ_k²    (pixel²)
    σ_q  the spread of log q over encoded data (interquartile range / 1.349)           (nats)
    c₀  median cycle error ‖E(G(z)) − z‖² over encoded data                          (latent²)

and :func:`scale_free` builds the label-free energy with dimensionless weights,

    E = S + μ′ · J + λ′ · (S₀ / σ_q) · Σ_k −log q(z_k) + γ′ · (S₀ / c₀) · Σ_k c(z_k),

so that each term is measured in the data's own units. The dimensionless defaults
(:data:`SCALE_FREE`) are the §6.5 weights (λ = 30, γ = 300, μ = 0.3) expressed in the scales of the
MNIST d = 8 AAE they were tuned on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from latentnav._modules import evaluating
from latentnav.interpolation import interpolate
from latentnav.navigation.energy import (
    Cycle,
    Density,
    Energy,
    MaxJump,
    PathContext,
    Smoothness,
)
from latentnav.navigation.thresholds import encoded_statistics

__all__ = ["PathScales", "path_scales", "scale_free", "SCALE_FREE"]


@dataclass(frozen=True)
class PathScales:
    """S₀ (``smoothness``), σ_q (``log_q_spread``), c₀ (``cycle``), all > 0."""

    smoothness: float
    log_q_spread: float
    cycle: float

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, float | int) and value > 0 and value < float("inf")):
                raise ValueError(f"PathScales.{name} must be a finite number > 0, got {value!r}")

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@torch.no_grad()
def path_scales(
    aae: nn.Module,
    compass: nn.Module,
    images: torch.Tensor,
    *,
    steps: int = 32,
    pairs: int = 256,
    seed: int = 0,
    batch_size: int = 2048,
) -> PathScales:
    """Measure :class:`PathScales` on ``images: (N, *image_shape)`` (N ≥ 2); ``pairs`` random
    pairs of distinct images (seeded) give S₀ at ``steps`` = T."""
    if not isinstance(images, torch.Tensor) or images.ndim < 2 or len(images) < 2:
        raise ValueError(f"images must be a tensor (N ≥ 2, *image_shape), got {images!r:.80}")
    with evaluating(aae, compass):
        stats = encoded_statistics(aae, compass, images, batch_size)
        z, lq, cycle = stats["z"], stats["log_q"], stats["cycle"]
        g = torch.Generator().manual_seed(seed)
        a = torch.randint(len(z), (pairs,), generator=g)
        b = (a + torch.randint(1, len(z), (pairs,), generator=g)) % len(z)  # never a == b
        energy = torch.cat(
            [
                Smoothness()(PathContext(interpolate(z[i], z[j], steps), aae.decoder))
                for i, j in zip(a.split(64), b.split(64), strict=True)
            ]
        )
    q = torch.quantile(lq, torch.tensor([0.25, 0.75], dtype=torch.float64))
    return PathScales(
        smoothness=float(energy.double().median()),
        log_q_spread=float((q[1] - q[0]) / 1.349),
        cycle=float(cycle.median()),
    )


# Dimensionless weights: §6.5's λ = 30, γ = 300, μ = 0.3 in the scales of an MNIST d = 8 AAE
# (`latentnav train --latent-dim 8`, RESULTS §6.10: S₀ = 282.2, σ_q = 1.830, c₀ = 0.1045, measured
# by `experiments/probe_path_scales.py --scales-only`): λ′ = 30 σ_q / S₀, γ′ = 300 c₀ / S₀.
SCALE_FREE: dict[str, float] = {"jump_weight": 0.3, "jump_power": 16.0,
                                "density_weight": 0.195, "cycle_weight": 0.111}  # fmt: skip


def scale_free(aae: nn.Module, compass: nn.Module, scales: PathScales, **overrides: Any) -> Energy:
    """The label-free energy with weights in the data's units (module docstring);
    ``overrides`` replace entries of :data:`SCALE_FREE`."""
    unknown = set(overrides) - set(SCALE_FREE)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(SCALE_FREE)}")
    s = {**SCALE_FREE, **overrides}
    return Energy(
        Smoothness(),
        MaxJump(s["jump_weight"], s["jump_power"]),
        Density(compass, aae.prior, s["density_weight"] * scales.smoothness / scales.log_q_spread),
        Cycle(aae.encoder, s["cycle_weight"] * scales.smoothness / scales.cycle),
    )
