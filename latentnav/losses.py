"""Score-matching objectives on diffused latents (DESIGN.md §4, seed 004).

For t ~ U(ε, T) (or uniform over NCSN's discrete levels) and z_t = m(t) z_0 + s(t) ξ, each loss is
E_t λ(t) · J_t with J_t one of

    DSM   ½ ‖s_θ(z_t, t) + ξ / s(t)‖²                         (denoising, Vincent 2011)
    SSM   vᵀ ∇_z (vᵀ s_θ) + ½ (vᵀ s_θ)²,  v Rademacher/Gaussian  (sliced, Song et al. 2019)
    ESM   tr ∇_z s_θ + ½ ‖s_θ‖²                               (explicit, Hyvärinen 2005)

All three have the same minimiser, ∇log p_t, and differ by constants in expectation. Weighting
λ(t) = s(t)² ("sigma2", Song et al. 2021) or g(t)² ("likelihood", Song et al. 2021b).
Shapes: ``z0: (B, d)``; ``score_fn(z: (B, d), t: (B,)) → (B, d)``; each loss returns a scalar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from latentnav.sde import SDE

__all__ = ["sample_times", "dsm_loss", "ssm_loss", "esm_loss", "score_matching_loss", "LOSSES"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Weighting = Literal["sigma2", "likelihood"]
LOSSES = ("dsm", "ssm", "esm")


def sample_times(
    n: int,
    sde: SDE,
    eps: float,
    generator: torch.Generator | None,
    device: torch.device,
    levels: torch.Tensor | None = None,
) -> torch.Tensor:
    """t: (n,) uniform on [eps, T], or uniform over the discrete ``levels`` (NCSN)."""
    if levels is not None:
        index = torch.randint(len(levels), (n,), generator=generator, device=device)
        return levels.to(device)[index]
    u = torch.rand(n, generator=generator, device=device)
    return eps + (sde.T - eps) * u


def _weight(sde: SDE, t: torch.Tensor, std: torch.Tensor, weighting: Weighting) -> torch.Tensor:
    if weighting == "sigma2":
        return std.square()
    if weighting == "likelihood":
        return sde.sde(torch.zeros(len(t), 1, device=t.device), t)[1].square()
    raise ValueError(f"weighting must be 'sigma2' or 'likelihood', got {weighting!r}")


def _noisy(sde, z0, eps, generator, levels):
    t = sample_times(len(z0), sde, eps, generator, z0.device, levels)
    noise = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
    z_t, std = sde.perturb(z0, t, noise)
    return z_t, t, std, noise


def dsm_loss(
    score_fn: ScoreFn,
    sde: SDE,
    z0: torch.Tensor,
    weighting: Weighting = "sigma2",
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    levels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoising score matching, E λ(t) ½ ‖s_θ(z_t, t) + ξ / s(t)‖²."""
    z_t, t, std, noise = _noisy(sde, z0, eps, generator, levels)
    score = score_fn(z_t, t)
    per = 0.5 * (score + noise / std[:, None]).square().sum(1)
    return (_weight(sde, t, std, weighting) * per).mean()


def _projections(shape, kind: str, generator, z: torch.Tensor) -> torch.Tensor:
    v = torch.randn(shape, generator=generator, device=z.device, dtype=z.dtype)
    if kind == "rademacher":
        return v.sign()
    if kind == "gaussian":
        return v
    raise ValueError(f"projection must be 'rademacher' or 'gaussian', got {kind!r}")


def ssm_loss(
    score_fn: ScoreFn,
    sde: SDE,
    z0: torch.Tensor,
    weighting: Weighting = "sigma2",
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    levels: torch.Tensor | None = None,
    projection: Literal["rademacher", "gaussian"] = "rademacher",
    n_projections: int = 1,
) -> torch.Tensor:
    """Sliced score matching with ``n_projections`` Hutchinson vectors v per point."""
    z_t, t, std, _ = _noisy(sde, z0, eps, generator, levels)
    z_t = z_t.repeat(n_projections, 1).requires_grad_(True)
    t_rep = t.repeat(n_projections)
    v = _projections(z_t.shape, projection, generator, z_t)
    score = score_fn(z_t, t_rep)
    vs = (v * score).sum(1)
    (grad,) = torch.autograd.grad(vs.sum(), z_t, create_graph=True)
    per = (v * grad).sum(1) + 0.5 * vs.square()
    return (_weight(sde, t_rep, std.repeat(n_projections), weighting) * per).mean()


def jacobian_trace(score: torch.Tensor, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """tr ∇_z s(z) exactly, with d backward passes: (B,)."""
    trace = torch.zeros(len(z), device=z.device, dtype=z.dtype)
    for i in range(z.shape[1]):
        (grad,) = torch.autograd.grad(
            score[:, i].sum(), z, create_graph=create_graph, retain_graph=True
        )
        trace = trace + grad[:, i]
    return trace


def esm_loss(
    score_fn: ScoreFn,
    sde: SDE,
    z0: torch.Tensor,
    weighting: Weighting = "sigma2",
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    levels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Explicit (Hyvärinen) score matching with the exact Jacobian trace (small d only)."""
    z_t, t, std, _ = _noisy(sde, z0, eps, generator, levels)
    z_t = z_t.detach().requires_grad_(True)
    score = score_fn(z_t, t)
    per = jacobian_trace(score, z_t, create_graph=True) + 0.5 * score.square().sum(1)
    return (_weight(sde, t, std, weighting) * per).mean()


def score_matching_loss(
    kind: str,
    score_fn: ScoreFn,
    sde: SDE,
    z0: torch.Tensor,
    **kwargs,
) -> torch.Tensor:
    """Dispatch on ``kind`` ∈ {"dsm", "ssm", "esm"}."""
    if kind == "dsm":
        return dsm_loss(score_fn, sde, z0, **kwargs)
    if kind == "ssm":
        return ssm_loss(score_fn, sde, z0, **kwargs)
    if kind == "esm":
        return esm_loss(score_fn, sde, z0, **kwargs)
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
