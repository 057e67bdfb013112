"""Path-level navigation (DESIGN.md §3): all T − 1 interior points of all pairs optimised at once.

    E(z_1..z_{T−1}) = T · Σ_k ‖G(z_{k+1}) − G(z_k)‖²  −  λ · Σ_k log q(z_k),
    log q(z) = log p(z) − ℓ(z)   (DESIGN.md §2; ℓ from a calibrated compass)

The first term is the discrete energy of the decoded path (evenly spaced, short frames), the second
keeps every point where encoded data lives. Endpoints stay exact; initialised from SLERP; Adam with
a per-pair convergence mask (a pair stops once its energy changes by less than ``tol`` relatively).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from latentnav.interpolation import interpolate
from latentnav.latent_path import LatentPath

__all__ = ["PathOptimizerConfig", "optimize_paths"]


@dataclass(frozen=True)
class PathOptimizerConfig:
    steps: int = 32
    density_weight: float = 0.05
    iterations: int = 100
    lr: float = 0.05
    tol: float = 1e-4
    eps: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 2):
            raise ValueError(f"steps must be an int ≥ 2, got {self.steps!r}")
        for name in ("lr", "tol", "eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.density_weight < 0 or self.iterations < 0:
            raise ValueError("density_weight and iterations must be ≥ 0")


def path_energy(
    decoder: nn.Module, compass: nn.Module, prior: nn.Module, z: torch.Tensor, weight: float
) -> torch.Tensor:
    """E per pair for full paths z: (B, T + 1, d) → (B,)."""
    b, n, d = z.shape
    frames = decoder(z.reshape(b * n, d)).reshape(b, n, -1)
    smooth = (n - 1) * frames.diff(dim=1).square().sum((1, 2))
    inner = z[:, 1:-1].reshape(-1, d)
    neg_log_q = (compass(inner) - prior.log_prob(inner)).reshape(b, n - 2).sum(1)
    return smooth + weight * neg_log_q


def optimize_paths(
    aae: nn.Module,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    compass: nn.Module,
    config: PathOptimizerConfig | None = None,
    progress: bool = False,
) -> LatentPath:
    """z_a, z_b: (B, d) → :class:`LatentPath` (B, T + 1, d); ``corrections`` holds, at every
    interior point, the number of iterations its pair was optimised for."""
    c = config or PathOptimizerConfig()
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(
            f"z_a and z_b must both be (B, d), got {tuple(z_a.shape)}, {tuple(z_b.shape)}"
        )
    modules = [aae.decoder, compass]
    states = [(m, m.training, [p.requires_grad for p in m.parameters()]) for m in modules]
    for m in modules:
        m.eval().requires_grad_(False)
    try:
        path = interpolate(z_a.detach(), z_b.detach(), c.steps, "slerp")
        inner = path[:, 1:-1].clone().requires_grad_(True)
        optimizer = torch.optim.Adam([inner], lr=c.lr)
        active = torch.ones(len(z_a), dtype=torch.bool, device=z_a.device)
        iterations = torch.zeros(len(z_a), dtype=torch.int64, device=z_a.device)
        previous = None
        for _ in tqdm(range(c.iterations), disable=not progress, desc="optimising paths"):
            full = torch.cat([path[:, :1], inner, path[:, -1:]], 1)
            energy = path_energy(aae.decoder, compass, aae.prior, full, c.density_weight)
            optimizer.zero_grad(set_to_none=True)
            energy.sum().backward()
            keep = active[:, None, None]  # masks, not indexing: no host sync on CUDA
            inner.grad.mul_(keep)
            before = inner.detach().clone()
            optimizer.step()
            with torch.no_grad():
                inner.copy_(torch.where(keep, inner, before))  # Converged pairs stay put.
                iterations += active.to(torch.int64)
                if previous is not None:
                    change = (previous - energy.detach()).abs() / energy.detach().abs().clamp_min(
                        1e-8
                    )
                    active &= change > c.tol
                previous = energy.detach()
        with torch.no_grad():
            full = torch.cat([path[:, :1], inner.detach(), path[:, -1:]], 1)
            d_score = torch.sigmoid(compass(full.flatten(0, 1))).view(full.shape[:2])
    finally:
        for m, training, grads in states:
            m.train(training)
            for p, g in zip(m.parameters(), grads, strict=True):
                p.requires_grad_(g)
    corrections = iterations[:, None].expand(-1, c.steps + 1).clone()
    corrections[:, 0] = corrections[:, -1] = 0
    return LatentPath(
        z=full,
        d_score=d_score,
        corrections=corrections,
        accepted=(d_score - 0.5).abs() < c.eps,
        config=None,
    )
