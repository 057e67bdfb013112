"""Conditional score estimators (DESIGN.md §6, seed 002), each a small class with one interface:

    loss(net, z0, y, generator) → scalar       z0: (B, d), y: (B, k) or labels (B,) in [0, k)
    score(net, y, generator)    → score_fn(z: (B, d), t: (B,)) → (B, d), ≈ ∇_z log p_t(z | y),
                                  y one label, (1, k) or (B, k) (broadcast over the batch)
    make_net(latent_dim)        → a NoiseNet of the right shape; latent_dim(net) → d

With ξ ~ N(0, I), x_t = m(t) ⊙ x_0 + s(t) ⊙ ξ per dimension and ε_θ the network's noise estimate
(score −ε_θ / s):

    CDE     x = z, y clean as the network's condition; ½ ‖ε_θ − ξ‖² (Theorem 1's σ(t) scaling).
    CDiffE  x = (z, y), both diffused by the same SDE; ½ ‖ε_θ − ξ‖²; the z part of the joint score
            at (z_t, y_t), y_t redrawn from p(y_t | y) at every call.
    CMDE    as CDiffE but y diffused by its own slower SDE ``sde_y``; ½ vᵀ Λ v with
            v = ∇ log p(x_t | x_0) − s_θ = (ε_θ − ξ) / s and the MLE weighting of seed 002 §2.C,
            Λ = diag(g_x(t)² on z dims, g_y(t)² on y dims) (the SDEs' diffusion coefficients,
            the seed's σ_x(t), σ_y(t) in dx = μ dt + σ_x(t) dw); ``weighting="sigma2"`` uses
            Λ = diag(s(t)²) instead.
    VS-CMDE CMDE with y on a VE SDE whose σ_y,max decays inverse-multiplicatively with the training
            step n, σ_y,max(n) = max(target, σ_start / (1 + rate · n)) (seed 002 §3.3).

Estimators are picked by name from ``ESTIMATORS``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from latentnav._checks import check_latents
from latentnav.conditional.condition import as_condition
from latentnav.conditional.net import NoiseNet, NoiseNetConfig
from latentnav.losses import sample_times
from latentnav.sde import SDE, VESDE

__all__ = ["Estimator", "CDE", "CDiffE", "CMDE", "VSCMDE", "ESTIMATORS", "make_estimator"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
WEIGHTINGS = ("mle", "sigma2")


def _expand(y: torch.Tensor, batch: int) -> torch.Tensor:
    """A bound condition (1, k) or (B, k) for a score call on a batch of ``batch`` latents."""
    if y.shape[0] == batch:
        return y
    if y.shape[0] == 1:
        return y.expand(batch, -1)
    raise ValueError(f"y must have batch size 1 or {batch} (as z), got {y.shape[0]}")


class Estimator:
    """Shared checks and time sampling; subclasses give ``make_net``, ``loss`` and ``score``."""

    name = ""

    def __init__(self, sde: SDE, cond_dim: int, eps: float = 1e-3):
        if not (isinstance(cond_dim, int) and cond_dim >= 1):
            raise ValueError(f"cond_dim must be an int ≥ 1, got {cond_dim!r}")
        if not 0 < eps < sde.T:
            raise ValueError(f"eps must be in (0, T={sde.T}), got {eps}")
        self.sde, self.cond_dim, self.eps = sde, cond_dim, float(eps)

    def _check(self, z0: torch.Tensor, y) -> torch.Tensor:
        """Check z0: (B, d); return y as (B, k) (labels (B,) become one-hot rows)."""
        check_latents(z0, None, "z0")
        return as_condition(y, self.cond_dim, len(z0), "y").to(z0)

    def _times(self, n: int, generator, device) -> torch.Tensor:
        return sample_times(n, self.sde, self.eps, generator, device)

    def make_net(self, latent_dim: int, **kw) -> NoiseNet:
        raise NotImplementedError

    def latent_dim(self, net: NoiseNet) -> int:
        """d of the latents ``net`` (made by :meth:`make_net`) scores."""
        return net.config.dim

    def loss(self, net, z0, y, generator=None) -> torch.Tensor:
        raise NotImplementedError

    def score(self, net, y, generator=None) -> ScoreFn:
        raise NotImplementedError


class CDE(Estimator):
    """Conditional denoising estimator: ε_θ(z_t, t, y) by DSM with y clean."""

    name = "cde"

    def make_net(self, latent_dim: int, **kw) -> NoiseNet:
        return NoiseNet(NoiseNetConfig(latent_dim, self.cond_dim, **kw))

    def _noise(self, net, z, t, y):
        mean, std = self.sde.marginal(t)
        return net(z, t, y, (mean.square() + std.square()).rsqrt()[:, None]), std[:, None]

    def loss(self, net, z0, y, generator=None):
        y = self._check(z0, y)
        t = self._times(len(z0), generator, z0.device)
        xi = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
        z_t, _ = self.sde.perturb(z0, t, xi)
        eps_hat, _ = self._noise(net, z_t, t, y)
        return 0.5 * (eps_hat - xi).square().sum(1).mean()

    def score(self, net, y, generator=None):
        y = as_condition(y, self.cond_dim, None, "y")

        def score_fn(z, t):
            eps_hat, std = self._noise(net, z, t, _expand(y, len(z)).to(z))
            return -eps_hat / std

        return score_fn


class CMDE(Estimator):
    """Multi-speed conditional diffusion: joint score on (z_t, y_t), y on its own ``sde_y``."""

    name = "cmde"

    def __init__(
        self,
        sde: SDE,
        cond_dim: int,
        sde_y: SDE | None = None,
        weighting: str = "mle",
        eps: float = 1e-3,
    ):
        super().__init__(sde, cond_dim, eps)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.sde_y = sde if sde_y is None else sde_y
        self.weighting = weighting

    def make_net(self, latent_dim: int, **kw) -> NoiseNet:
        return NoiseNet(NoiseNetConfig(latent_dim + self.cond_dim, 0, **kw))

    def latent_dim(self, net: NoiseNet) -> int:
        return net.config.dim - self.cond_dim

    def _marginal(self, t: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension m(t), s(t) of the joint state: (B, d + k) each."""
        (mx, sx), (my, sy) = self.sde.marginal(t), self.sde_y.marginal(t)
        k = self.cond_dim
        mean = torch.cat([mx[:, None].expand(-1, d), my[:, None].expand(-1, k)], 1)
        std = torch.cat([sx[:, None].expand(-1, d), sy[:, None].expand(-1, k)], 1)
        return mean, std

    def _weight(self, t: torch.Tensor, std: torch.Tensor, d: int) -> torch.Tensor:
        """Λ / s²: (B, d + k); Λ = g² per dimension ("mle") or s² ("sigma2")."""
        if self.weighting == "sigma2":
            return torch.ones_like(std)
        one = torch.zeros(len(t), 1, device=t.device)
        gx, gy = self.sde.sde(one, t)[1], self.sde_y.sde(one, t)[1]
        g2 = torch.cat([gx[:, None].expand(-1, d), gy[:, None].expand(-1, self.cond_dim)], 1)
        return g2.square() / std.square()

    def _sde_y_for_loss(self) -> SDE:
        return self.sde_y

    def loss(self, net, z0, y, generator=None):
        y = self._check(z0, y)
        self.sde_y = self._sde_y_for_loss()
        d = z0.shape[1]
        x0 = torch.cat([z0, y.to(z0.dtype)], 1)
        t = self._times(len(z0), generator, z0.device)
        xi = torch.randn(x0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
        mean, std = self._marginal(t, d)
        x_t = mean * x0 + std * xi
        eps_hat = net(x_t, t, None, (mean.square() + std.square()).rsqrt())
        return 0.5 * (self._weight(t, std, d) * (eps_hat - xi).square()).sum(1).mean()

    def score(self, net, y, generator=None):
        """The z part of the joint score at (z, y_t), y_t ~ p(y_t | y) drawn from ``generator``
        at each call."""
        y = as_condition(y, self.cond_dim, None, "y")

        def score_fn(z, t):
            d, yb = z.shape[1], _expand(y, len(z)).to(z)
            mean, std = self._marginal(t, d)
            noise = torch.randn(yb.shape, generator=generator, device=z.device, dtype=z.dtype)
            x_t = torch.cat([z, mean[:, d:] * yb + std[:, d:] * noise], 1)
            eps_hat = net(x_t, t, None, (mean.square() + std.square()).rsqrt())
            return (-eps_hat / std)[:, :d]

        return score_fn


class CDiffE(CMDE):
    """Conditional diffusive estimator: z and y diffused by the same SDE, ½ ‖ε_θ − ξ‖²."""

    name = "cdiffe"

    def __init__(self, sde: SDE, cond_dim: int, eps: float = 1e-3):
        super().__init__(sde, cond_dim, None, "sigma2", eps)


class VSCMDE(CMDE):
    """CMDE with y on VESDE(σ_min, σ_y,max(n)), σ_y,max(n) = max(target, start / (1 + rate n));
    each ``loss`` call is one training step n (``step`` counts them)."""

    name = "vs-cmde"

    def __init__(
        self,
        sde: SDE,
        cond_dim: int,
        sigma_start: float = 1.0,
        sigma_target: float = 0.05,
        rate: float = 0.01,
        sigma_min: float = 1e-3,
        weighting: str = "mle",
        eps: float = 1e-3,
    ):
        if not 0 < sigma_min < sigma_target <= sigma_start:
            raise ValueError(
                "need 0 < sigma_min < sigma_target ≤ sigma_start, got "
                f"{sigma_min}, {sigma_target}, {sigma_start}"
            )
        if not rate >= 0:
            raise ValueError(f"rate must be ≥ 0, got {rate}")
        self.sigma_start, self.sigma_target = float(sigma_start), float(sigma_target)
        self.rate, self.sigma_min, self.step = float(rate), float(sigma_min), 0
        super().__init__(sde, cond_dim, self._ve(sigma_start), weighting, eps)

    def _ve(self, sigma_max: float) -> VESDE:
        return VESDE(self.sigma_min, sigma_max)

    def sigma_max(self, step: int) -> float:
        """σ_y,max after ``step`` training steps (inverse-multiplicative decay, floored)."""
        return max(self.sigma_target, self.sigma_start / (1 + self.rate * step))

    def _sde_y_for_loss(self) -> SDE:
        sde_y = self._ve(self.sigma_max(self.step))
        self.step += 1
        return sde_y


ESTIMATORS: dict[str, type[Estimator]] = {c.name: c for c in (CDE, CDiffE, CMDE, VSCMDE)}


def make_estimator(name: str, sde: SDE, cond_dim: int, **kw) -> Estimator:
    """The estimator registered as ``name`` in ``ESTIMATORS``."""
    if name not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {tuple(ESTIMATORS)}, got {name!r}")
    return ESTIMATORS[name](sde, cond_dim, **kw)
