"""Compasses of the stepwise navigator (DESIGN.md §3, step 3): one call, z → (loss, logit).

A compass wraps a logit module ℓ: z (B, d) → (B,) (the AAE's D_z or a refitted, calibrated one,
:func:`latentnav.compass.fit_compass`; ℓ ≈ log p(z) − log q(z)). Calling it gives the loss L that a
correction lowers and ℓ itself, from which the navigator's band test |σ(ℓ) − 0.5| < ε is made:

- :class:`DiscriminatorCompass`: the seed's band loop, L = ℓ² ("logit", no saturation) or
  L = (σ(ℓ) − 0.5)² ("prob", the seed's form; same zero set).
- :class:`DensityCompass`: descent on −log q = ℓ − log p (seed 001 §4.2).

A compass is an ``nn.Module`` so that ``.to``, ``.eval`` and ``.parameters`` reach the wrapped
modules; any module with the same ``forward(z) -> (loss (B,), logit (B,))`` and a ``config()``
(plain data, stored in the path) can stand in: :func:`as_compass` tells it from a bare logit
module by that ``config``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["DiscriminatorCompass", "DensityCompass", "as_compass"]

_OBJECTIVES = {
    "logit": lambda logit: logit.square(),
    "prob": lambda logit: (torch.sigmoid(logit) - 0.5).square(),
}


class DiscriminatorCompass(nn.Module):
    """L = ℓ² ("logit") or (σ(ℓ) − 0.5)² ("prob") at z: (B, d) → (L (B,), ℓ (B,))."""

    def __init__(self, logit_module: nn.Module, objective: str = "logit"):
        super().__init__()
        if objective not in _OBJECTIVES:
            raise ValueError(f"objective must be one of {tuple(_OBJECTIVES)}, got {objective!r}")
        self.logit_module, self.objective = logit_module, objective

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.logit_module(z)
        return _OBJECTIVES[self.objective](logit), logit

    def config(self) -> dict[str, Any]:
        return {"name": "discriminator", "objective": self.objective}


class DensityCompass(nn.Module):
    """L = −log q(z) = ℓ(z) − log p(z) (DESIGN.md §3, density): z (B, d) → (L (B,), ℓ (B,))."""

    def __init__(self, logit_module: nn.Module, prior: nn.Module):
        super().__init__()
        self.logit_module, self.prior = logit_module, prior

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.logit_module(z)
        return logit - self.prior.log_prob(z), logit

    def config(self) -> dict[str, Any]:
        return {"name": "density"}


def as_compass(compass: nn.Module) -> nn.Module:
    """A compass object as is; a bare logit module ℓ becomes ``DiscriminatorCompass(ℓ)``."""
    if not isinstance(compass, nn.Module):
        raise TypeError(f"compass must be an nn.Module, got {type(compass).__name__}")
    if isinstance(compass, DiscriminatorCompass | DensityCompass) or hasattr(compass, "config"):
        return compass
    return DiscriminatorCompass(compass)
