"""Probability-flow-ODE interpolation as a navigation method (DESIGN.md §3, baselines; seed 000
§5.3): carry z_a, z_b to time t with the latent diffusion's ODE, interpolate there, carry every
point back (:meth:`latentnav.diffusion.LatentDiffusion.interpolate`). Records nothing."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from latentnav.navigation.methods import Method, check_steps, register_method
from latentnav.navigation.path import LatentPath

__all__ = ["ODEInterpolation"]


@register_method("ode")
class ODEInterpolation(Method):
    """``ODEInterpolation(aae, diffusion, steps, t, interpolation, ema, **ode)``; ``ode`` (rtol,
    atol) goes to :func:`latentnav.sampling.probability_flow` (its adaptive default solver:
    ``LatentDiffusion.interpolate`` keeps ``method`` for the interpolation). ``callback`` sees
    the finished path once, ``{"i": 0, "z"}`` with z (B, T + 1, d): the solver's steps are not
    exposed."""

    def __init__(
        self,
        aae: nn.Module,
        diffusion: nn.Module | None = None,
        steps: int = 32,
        t: float | None = None,
        interpolation: str = "slerp",
        ema: bool = True,
        **ode: Any,
    ):
        super().__init__(aae)
        if diffusion is None:
            raise ValueError("the 'ode' method needs the latent diffusion model: diffusion=")
        if diffusion.latent_dim != self.latent_dim:
            raise ValueError(
                f"diffusion has latent dim {diffusion.latent_dim}, the AAE {self.latent_dim}"
            )
        if interpolation not in ("slerp", "lerp"):
            raise ValueError(f"interpolation must be 'slerp' or 'lerp', got {interpolation!r}")
        self.diffusion, self.steps, self.t = diffusion, check_steps(steps), t
        self.interpolation, self.ema, self.ode = interpolation, ema, ode

    @property
    def model(self) -> nn.Module:
        return self.diffusion

    def config(self) -> dict[str, Any]:
        return {"steps": self.steps, "t": self.t, "interpolation": self.interpolation,
                "ema": self.ema, **self.ode}  # fmt: skip

    def _path(self, z_a, z_b, callback):
        try:
            z = self.diffusion.interpolate(
                z_a, z_b, self.steps, self.t, self.interpolation, self.ema, **self.ode
            )
        except AssertionError as err:  # torchdiffeq's step-size underflow, e.g. |z| ≈ 1e19
            size = float(torch.maximum(z_a.abs().amax(), z_b.abs().amax()))
            raise ValueError(
                f"z_a, z_b: the probability-flow ODE could not integrate from these endpoints "
                f"(largest entry {size:.3g}; {err}); the model's latents are of order 1"
            ) from err
        if callback is not None:
            callback({"i": 0, "z": z})
        return LatentPath(z, {}, self.name, self.config())
