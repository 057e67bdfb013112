"""AAE priors p(z) with exact log-densities (DESIGN.md §2: normal, K-Gaussian mixture, swiss roll).

Every prior keeps its parameters as buffers, so ``prior.to(device)`` / ``prior.double()`` move it.
Mixtures evaluate log p(z) = logsumexp_k [log w_k + log N(z; μ_k, L_k L_kᵀ)] batched over
components with one triangular solve; the swiss roll is such a mixture along a 2-D spiral.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from latentnav._checks import check_latents, check_positive

__all__ = ["Prior", "StandardNormal", "GaussianMixture", "SwissRoll", "PRIOR_NAMES"]
__all__ += ["make_prior", "prior_from_config", "spiral_points"]

PRIOR_NAMES: tuple[str, ...] = ("normal", "mixture", "swiss-roll")
_LOG_2PI = math.log(2 * math.pi)
_CHUNK = 2**22  # max B·K·d elements per block of the mixture log-density


def _check_int(value: object, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int ≥ {minimum}, got {value!r}")


class Prior(nn.Module):
    """Base class: ``sample(n) -> (n, dim)``, ``log_prob(z: (B, dim)) -> (B,)``, ``score``."""

    dim: int

    def __init__(self, dim: int):
        super().__init__()
        _check_int(dim, "dim", 1)
        self.dim = dim
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_prob(z)

    def score(self, z: torch.Tensor) -> torch.Tensor:
        """∇_z log p(z) by autograd, ``z: (B, dim) -> (B, dim)``, detached; works under no_grad."""
        check_latents(z, self.dim)
        with torch.enable_grad():
            z_ = z.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.log_prob(z_).sum(), z_)
        return grad.detach()

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _check_n(self, n: int) -> None:
        _check_int(n, "n", 1)


class StandardNormal(Prior):
    """p(z) = N(0, I_dim)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check_n(n)
        return torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_latents(z, self.dim)
        return -0.5 * (z.pow(2).sum(-1) + self.dim * _LOG_2PI)

    def config(self) -> dict[str, Any]:
        return {"name": "normal", "dim": self.dim}


def _as_scale_tril(
    means: torch.Tensor, scale_tril: torch.Tensor | None, stds: torch.Tensor | float | None
) -> torch.Tensor:
    k, d = means.shape
    if (scale_tril is None) == (stds is None):
        raise ValueError("give exactly one of scale_tril (K, d, d) or stds (K, d), (K,), scalar")
    if scale_tril is not None:
        tril = torch.as_tensor(scale_tril, dtype=means.dtype)
        if tril.shape != (k, d, d):
            raise ValueError(f"scale_tril must have shape ({k}, {d}, {d}), got {tuple(tril.shape)}")
        tril = torch.tril(tril)
    else:
        s = torch.as_tensor(stds, dtype=means.dtype)
        s = s[:, None] if s.shape == (k,) else s  # one std per component
        if s.ndim > 0 and s.shape not in ((k, 1), (k, d)):
            raise ValueError(f"stds must be a scalar, ({k},) or ({k}, {d}), got {tuple(s.shape)}")
        tril = torch.diag_embed(s.expand(k, d).clone())
    diag = torch.diagonal(tril, dim1=-2, dim2=-1)
    if tril.is_meta:  # a shape-only skeleton (checkpoint.build_checked): no values to check
        return tril
    if not torch.isfinite(tril).all() or not (diag > 0).all():
        raise ValueError("scale_tril must be finite with a strictly positive diagonal (stds > 0)")
    return tril


class GaussianMixture(Prior):
    """p(z) = Σ_k w_k N(z; μ_k, L_k L_kᵀ); ``means: (K, d)``, ``scale_tril: (K, d, d)``."""

    def __init__(
        self,
        means: torch.Tensor,
        scale_tril: torch.Tensor | None = None,
        stds: torch.Tensor | float | None = None,
        weights: torch.Tensor | None = None,
    ):
        means = torch.as_tensor(means)
        means = means if means.is_floating_point() else means.to(torch.get_default_dtype())
        finite = means.is_meta or bool(torch.isfinite(means).all())
        if means.ndim != 2 or means.shape[0] < 1 or not finite:
            raise ValueError(f"means must be a finite (K, d) tensor, got {tuple(means.shape)}")
        super().__init__(int(means.shape[1]))
        k = means.shape[0]
        tril = _as_scale_tril(means, scale_tril, stds)
        if weights is None:
            w = torch.full((k,), 1.0 / k, dtype=means.dtype)
        else:
            w = torch.as_tensor(weights, dtype=means.dtype)
            valid = w.is_meta or (torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0)
            if w.shape != (k,) or not valid:
                raise ValueError(f"weights must be ({k},), finite, ≥ 0, with a positive sum")
            w = w / w.sum()
        self.register_buffer("means", means.clone())
        self.register_buffer("scale_tril", tril.clone())
        self.register_buffer("weights", w)
        self._factory: dict[str, Any] | None = None

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    def mean(self) -> torch.Tensor:
        """E[z] = Σ_k w_k μ_k, shape (dim,)."""
        return self.weights @ self.means

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check_n(n)
        idx = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, 1, generator=generator, device=self.device, dtype=self.dtype)
        return self.means[idx] + (self.scale_tril[idx] @ eps).squeeze(-1)

    def component_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; μ_k, Σ_k) for every component, ``z: (B, d) -> (B, K)``."""
        check_latents(z, self.dim)
        k, d = self.means.shape
        means, tril = self.means.to(z), self.scale_tril.to(z)
        half_logdet = torch.diagonal(tril, dim1=-2, dim2=-1).log().sum(-1)  # (K,)
        eye = torch.eye(d, dtype=z.dtype, device=z.device).expand(k, d, d)
        linv = torch.linalg.solve_triangular(tril, eye, upper=False)  # L_k⁻¹, (K, d, d)
        # L_k⁻¹(z − μ_k) for all k at once: one (b, d) × (d, K·d) product per block
        proj = linv.reshape(k * d, d).T
        shift = (linv @ means[:, :, None]).reshape(k * d)
        block = max(1, _CHUNK // (k * d))
        out = [(zb @ proj - shift).view(-1, k, d).pow(2).sum(-1) for zb in z.split(block)]
        return -0.5 * torch.cat(out) - half_logdet - 0.5 * d * _LOG_2PI

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        log_w = self.weights.to(z).log()
        return torch.logsumexp(self.component_log_prob(z) + log_w, dim=-1)

    def config(self) -> dict[str, Any]:
        if self._factory is not None:
            return {"name": "mixture", **self._factory}
        tensors = {key: getattr(self, key).tolist() for key in ("means", "scale_tril", "weights")}
        return {"name": "mixture", **tensors}

    @classmethod
    def on_circle(
        cls,
        k: int = 10,
        dim: int = 2,
        radius: float = 2.0,
        radial_std: float = 0.5,
        tangential_std: float = 0.1,
    ) -> GaussianMixture:
        """K Gaussians on a circle in dims (0, 1), N(0, 1) in the others (Makhzani et al. Fig. 4).

        Component k sits at angle 2πk/K with covariance R diag(radial², tangential²) Rᵀ (R = radial,
        tangent axes). Defaults give the paper's "petals": elongated radially (as the common
        reference sampler: std 0.5 radial, narrow tangential); adjacent petals are ≥ 6 tangential
        stds apart at radius 1 and overlap only near the centre.
        """
        _check_int(k, "k", 1)
        _check_int(dim, "dim", 2)
        check_positive(radius, "radius")
        check_positive(radial_std, "radial_std")
        check_positive(tangential_std, "tangential_std")
        dtype = torch.get_default_dtype()
        angle = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
        radial = torch.stack([angle.cos(), angle.sin()], -1)  # (K, 2)
        tangent = torch.stack([-angle.sin(), angle.cos()], -1)
        rot = torch.stack([radial, tangent], -1)  # (K, 2, 2), columns = axes
        cov2 = rot * torch.tensor([radial_std, tangential_std], dtype=torch.float64) ** 2 @ rot.mT
        means = torch.zeros(k, dim, dtype=torch.float64)
        means[:, :2] = radius * radial
        tril = torch.eye(dim, dtype=torch.float64).repeat(k, 1, 1)
        tril[:, :2, :2] = torch.linalg.cholesky(cov2)
        mix = cls(means.to(dtype), scale_tril=tril.to(dtype))
        mix._factory = dict(factory="on_circle", k=k, dim=dim, radius=float(radius))
        mix._factory.update(radial_std=float(radial_std), tangential_std=float(tangential_std))
        return mix


def spiral_points(n: int, turns: float, max_radius: float, start_turn: float) -> torch.Tensor:
    """(n, 2) float64 points at equal arc length on the spiral r = max_radius·θ/θ_max,
    θ/2π ∈ [start_turn, turns]."""
    theta_max = 2 * math.pi * turns
    fine = torch.linspace(2 * math.pi * start_turn, theta_max, 20001, dtype=torch.float64)
    a = max_radius / theta_max
    speed = a * torch.sqrt(1 + fine**2)  # |d(r cos θ, r sin θ)/dθ|
    arc = torch.cat([fine.new_zeros(1), torch.cumsum((speed[1:] + speed[:-1]) / 2, 0)])
    arc = arc * (fine[1] - fine[0])
    if arc.is_meta:  # a shape-only skeleton (checkpoint.build_checked)
        return torch.empty(n, 2, dtype=torch.float64)
    target = torch.linspace(0, float(arc[-1]), n, dtype=torch.float64)
    j = torch.searchsorted(arc, target).clamp(1, len(fine) - 1)
    frac = (target - arc[j - 1]) / (arc[j] - arc[j - 1])
    theta = fine[j - 1] + frac * (fine[j] - fine[j - 1])
    r = a * theta
    return torch.stack([r * theta.cos(), r * theta.sin()], -1)


class SwissRoll(GaussianMixture):
    """Swiss-roll prior: ``n_components`` isotropic Gaussians (std ``std``) at equal arc length on
    a 2-D Archimedean spiral in dims (0, 1), N(0, 1) in the others; exact log p (DESIGN.md §2).

    Defaults: 2 turns out to radius 3 (turns 1.5 apart, ≈ 10 stds), 100 components ≈ 1.9 stds
    apart along the curve, so the density is smooth along the roll with clear gaps between turns.
    """

    def __init__(
        self,
        dim: int = 2,
        n_components: int = 100,
        turns: float = 2.0,
        max_radius: float = 3.0,
        std: float = 0.1,
        start_turn: float = 0.25,
    ):
        _check_int(dim, "dim", 2)
        _check_int(n_components, "n_components", 2)
        for value, name in ((turns, "turns"), (max_radius, "max_radius"), (std, "std")):
            check_positive(value, name)
        if not 0 <= start_turn < turns:
            raise ValueError(f"start_turn must be in [0, turns={turns}), got {start_turn}")
        pts = spiral_points(n_components, turns, max_radius, start_turn)
        means = torch.zeros(n_components, dim, dtype=torch.float64)
        means[:, :2] = pts
        stds = torch.ones(n_components, dim, dtype=torch.float64)
        stds[:, :2] = std
        dtype = torch.get_default_dtype()
        super().__init__(means.to(dtype), stds=stds.to(dtype))
        self._factory = dict(dim=dim, n_components=n_components, turns=float(turns))
        self._factory.update(max_radius=float(max_radius), std=float(std))
        self._factory.update(start_turn=float(start_turn))

    def config(self) -> dict[str, Any]:
        return {"name": "swiss-roll", **(self._factory or {})}


def make_prior(name: str, dim: int, **kwargs: Any) -> Prior:
    """Prior by name: "normal", "mixture" (:meth:`GaussianMixture.on_circle`) or "swiss-roll"."""
    if name == "normal":
        if kwargs:
            raise TypeError(f"prior 'normal' takes no options, got {sorted(kwargs)}")
        return StandardNormal(dim)
    if name == "mixture":
        return GaussianMixture.on_circle(dim=dim, **kwargs)
    if name == "swiss-roll":
        return SwissRoll(dim=dim, **kwargs)
    raise ValueError(f"unknown prior {name!r}; accepted names: {', '.join(PRIOR_NAMES)}")


def prior_from_config(cfg: dict[str, Any]) -> Prior:
    """Inverse of :meth:`Prior.config`."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name == "normal":
        return StandardNormal(int(cfg["dim"]))
    if name == "mixture":
        if cfg.pop("factory", None) == "on_circle":
            return GaussianMixture.on_circle(**cfg)
        t = {key: torch.tensor(cfg[key]) for key in ("means", "scale_tril", "weights")}
        return GaussianMixture(t["means"], scale_tril=t["scale_tril"], weights=t["weights"])
    if name == "swiss-roll":
        return SwissRoll(**cfg)
    raise ValueError(f"unknown prior {name!r} in config; accepted names: {', '.join(PRIOR_NAMES)}")
