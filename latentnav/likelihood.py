"""Log-likelihood of latents through the probability-flow ODE (DESIGN.md §4; Song et al. 2021 §D.2).

    log p_ε(z) = log p_T(z_T) + ∫_ε^T ∇·f̃(z_t, t) dt,   f̃ = f − ½ g² s_θ,

integrated forward from z_ε = z with torchdiffeq on the augmented state (z_t, ∫∇·f̃). The
divergence is exact (d backward passes; small d) or Hutchinson's vᵀ ∂(vᵀ f̃)/∂z with one v per
sample held fixed over the solve (Rademacher or Gaussian), which is unbiased in expectation.
Shapes: ``z: (B, d)`` → ``log_prob: (B,)`` in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from latentnav._checks import check_latents
from latentnav.losses import jacobian_trace
from latentnav.sde import SDE

__all__ = ["LikelihoodResult", "log_likelihood", "bits_per_dim"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LikelihoodResult:
    """``log_prob: (B,)`` (nats), the prior point ``z_T: (B, d)``, and the solver's NFE."""

    log_prob: torch.Tensor
    z_T: torch.Tensor
    nfe: int


def log_likelihood(
    score_fn: ScoreFn,
    sde: SDE,
    z: torch.Tensor,
    divergence: Literal["exact", "hutchinson"] = "exact",
    projection: Literal["rademacher", "gaussian"] = "rademacher",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
) -> LikelihoodResult:
    """log p(z) under the model's probability-flow ODE."""
    from torchdiffeq import odeint

    check_latents(z, None, "z")
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
    rsde = sde.reverse(score_fn, probability_flow=True)
    v = None
    if divergence == "hutchinson":
        v = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        if projection == "rademacher":
            v = v.sign()
        elif projection != "gaussian":
            raise ValueError(f"projection must be 'rademacher' or 'gaussian', got {projection!r}")
    nfe = 0

    def dynamics(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        nonlocal nfe
        nfe += 1
        x = state[0]
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            drift = rsde.sde(x, t.expand(len(x)))[0]
            if v is None:
                div = jacobian_trace(drift, x, create_graph=False)
            else:
                (grad,) = torch.autograd.grad((drift * v).sum(), x)
                div = (grad * v).sum(1)
        return drift.detach(), div.detach()

    span = torch.tensor([eps, sde.T], device=z.device, dtype=z.dtype)
    start = (z.detach(), torch.zeros(len(z), device=z.device, dtype=z.dtype))
    adaptive = method in ("dopri5", "dopri8", "bosh3", "adaptive_heun")
    options = {"step_t": span[1:]} if adaptive else None
    zs, integral = odeint(
        dynamics, start, span, rtol=rtol, atol=atol, method=method, options=options
    )
    z_T = zs[-1]
    return LikelihoodResult(sde.prior_log_prob(z_T) + integral[-1], z_T, nfe)


def bits_per_dim(log_prob: torch.Tensor, dim: int) -> torch.Tensor:
    """−log p / (d ln 2): (B,) → (B,)."""
    return -log_prob / (dim * math.log(2))
