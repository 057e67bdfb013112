"""Forward SDEs over latents, their reverse-time SDE and probability-flow ODE (DESIGN.md §4).

    forward        dz = f(z, t) dt + g(t) dw,                 t ∈ [0, T]
    reverse        dz = [f − g² ∇log p_t(z)] dt + g dw̄
    probability    dz = [f − ½ g² ∇log p_t(z)] dt

All three SDEs have affine drift, so p_t(z_t | z_0) = N(m(t) z_0, s(t)² I): ``marginal`` returns
(m(t), s(t)). Discretisations follow Song et al. 2021 (score_sde): NCSN's for VE, DDPM's for VP and
sub-VP. Shapes: ``z: (B, d)``, ``t: (B,)``; coefficients come back as ``(B,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["SDE", "VESDE", "VPSDE", "SubVPSDE", "ReverseSDE", "SDEConfig", "make_sde"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _col(c: torch.Tensor) -> torch.Tensor:
    """(B,) → (B, 1) so that it broadcasts over the latent dimension."""
    return c[:, None]


class SDE:
    """An Itô SDE on R^d with affine drift; subclasses give f, g, the marginal and the prior."""

    T: float = 1.0
    name: str = ""

    def __init__(self, steps: int = 1000):
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"steps must be an int ≥ 1, got {steps!r}")
        self.steps = steps

    def sde(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift f(z, t): (B, d) and diffusion g(t): (B,)."""
        raise NotImplementedError

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean coefficient m(t) and std s(t) of p(z_t | z_0) = N(m z_0, s² I), both (B,)."""
        raise NotImplementedError

    def prior_std(self) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    def prior_sample(
        self, shape: tuple[int, int], generator: torch.Generator | None = None, **kw
    ) -> torch.Tensor:
        """z_T ~ N(0, prior_std² I) of shape ``(B, d)``."""
        return self.prior_std() * torch.randn(shape, generator=generator, **kw)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, prior_std² I): (B, d) → (B,)."""
        s = self.prior_std()
        d = z.shape[1]
        return -0.5 * z.square().sum(1) / s**2 - d * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def perturb(
        self, z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z_t = m(t) z_0 + s(t) ε; returns z_t (B, d) and s(t) (B,)."""
        mean, std = self.marginal(t)
        return _col(mean) * z0 + _col(std) * noise, std

    def discretize(
        self, z: torch.Tensor, t: torch.Tensor, dt: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward step of size dt (default T / steps), z' = z + f_i + G_i ε: (f_i, G_i)."""
        dt = self.T / self.steps if dt is None else dt
        drift, diffusion = self.sde(z, t)
        return drift * dt, diffusion * math.sqrt(dt)

    def noise_levels(self, n: int, eps: float = 1e-3) -> torch.Tensor:
        """n discrete times from T down to ``eps`` (NCSN-style training levels): (n,)."""
        return torch.linspace(self.T, eps, n)

    def check_discretization(self, dt: float, span: float) -> None:
        """Raise when steps of size ``dt`` (over a grid spanning ``span``) break the discrete
        sampler steps (reverse diffusion, ancestral, Langevin); every step size is fine here."""

    def langevin_alpha(self, t: torch.Tensor, dt: float) -> torch.Tensor:
        """α_i of the signal-to-noise Langevin step rule (score_sde), 1 by default: (B,)."""
        return torch.ones_like(t)

    def ancestral_step(
        self, z: torch.Tensor, score: torch.Tensor, t: torch.Tensor, dt: float, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, z_mean) after one ancestral step from t to t − dt, given s(z, t) and noise ξ."""
        raise ValueError(f"ancestral sampling is defined for the VE and VP SDEs, not {self.name!r}")

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> ReverseSDE:
        return ReverseSDE(self, score_fn, probability_flow)

    def true_score_gaussian(
        self, z: torch.Tensor, t: torch.Tensor, mean0: torch.Tensor, var0: torch.Tensor
    ) -> torch.Tensor:
        """∇log p_t for data N(mean0, diag(var0)): p_t = N(m·mean0, m²·var0 + s²) (closed form)."""
        m, s = self.marginal(t)
        var = _col(m) ** 2 * var0 + _col(s) ** 2
        return -(z - _col(m) * mean0) / var


class VESDE(SDE):
    """Variance exploding: σ(t) = σ_min (σ_max/σ_min)^t, f = 0, g = σ(t) √(2 log(σ_max/σ_min))."""

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, steps: int = 1000):
        super().__init__(steps)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def sde(self, z, t):
        return torch.zeros_like(z), self.sigma(t) * math.sqrt(2 * self._log_ratio)

    def marginal(self, t):
        return torch.ones_like(t), self.sigma(t)

    def prior_std(self) -> float:
        return self.sigma_max

    def discretize(self, z, t, dt=None):
        """NCSN / SMLD: f = 0, G = √(σ(t)² − σ(t − Δt)²), with σ(t − Δt) := 0 when t − Δt ≤ 0."""
        dt = self.T / self.steps if dt is None else dt
        sigma, prev = self.sigma(t), self.previous_sigma(t, dt)
        return torch.zeros_like(z), (sigma.square() - prev.square()).clamp_min(0).sqrt()

    def previous_sigma(self, t: torch.Tensor, dt: float) -> torch.Tensor:
        """σ one step below t, 0 past the first level (NCSN's σ_{i−1}, σ_0 := 0): (B,)."""
        return torch.where(t - dt > 1e-12, self.sigma(t - dt), 0.0)

    def noise_levels(self, n: int, eps: float = 0.0) -> torch.Tensor:
        """NCSN's geometric σ levels from σ_max down to σ_min, as times t_i: (n,)."""
        return torch.linspace(self.T, 0.0, n)

    def ancestral_step(self, z, score, t, dt, noise):
        """NCSN (SMLD) ancestral step: z' = z + (σ_i² − σ_{i−1}²) s + √(σ_{i−1}² (σ_i² −
        σ_{i−1}²) / σ_i²) ξ."""
        sigma, prev = self.sigma(t), self.previous_sigma(t, dt)
        var = sigma.square() - prev.square()
        z_mean = z + score * _col(var)
        std = (prev.square() * var / sigma.square()).sqrt()
        return z_mean + _col(std) * noise, z_mean

    def config(self) -> dict:
        return {
            "name": "ve",
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
            "steps": self.steps,
        }


class VPSDE(SDE):
    """Variance preserving: β(t) = β_min + t (β_max − β_min), f = −½ β z, g = √β."""

    name = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, steps: int = 1000):
        super().__init__(steps)
        if not 0 < beta_min <= beta_max:
            raise ValueError(f"need 0 < beta_min ≤ beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_mean(self, t: torch.Tensor) -> torch.Tensor:
        """log m(t) = −½ ∫₀ᵗ β = −¼ t² (β_max − β_min) − ½ t β_min."""
        return -0.25 * t.square() * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def sde(self, z, t):
        beta = self.beta(t)
        return -0.5 * _col(beta) * z, beta.sqrt()

    def marginal(self, t):
        log_mean = self._log_mean(t)
        return log_mean.exp(), (-torch.expm1(2 * log_mean)).sqrt()

    def prior_std(self) -> float:
        return 1.0

    def discretize(self, z, t, dt=None):
        """DDPM: β_i = β(t) Δt, f = (√(1 − β_i) − 1) z, G = √β_i."""
        beta_i = self.beta(t) * (self.T / self.steps if dt is None else dt)
        return _col((1 - beta_i).sqrt() - 1) * z, beta_i.sqrt()

    def check_discretization(self, dt: float, span: float) -> None:
        """DDPM's steps need β_i = β(t) Δt < 1 at every t."""
        if self.beta_max * dt >= 1:
            need = int(self.beta_max * span) + 1
            raise ValueError(
                f"steps of Δt = {dt:.4g} are too few for the {self.name} discretisation "
                f"(β_max·Δt must be < 1): use steps ≥ {need}, or the 'em' / 'ode' sampler"
            )

    def langevin_alpha(self, t, dt):
        """α_i = 1 − β(t) Δt (score_sde's Langevin corrector for VP and sub-VP)."""
        return 1 - self.beta(t) * dt

    def ancestral_step(self, z, score, t, dt, noise):
        """DDPM ancestral step: z' = (z + β_i s) / √(1 − β_i) + √β_i ξ, β_i = β(t) Δt."""
        beta = self.beta(t) * dt
        z_mean = (z + _col(beta) * score) / _col((1 - beta).sqrt())
        return z_mean + _col(beta.sqrt()) * noise, z_mean

    def config(self) -> dict:
        return {
            "name": self.name,
            "beta_min": self.beta_min,
            "beta_max": self.beta_max,
            "steps": self.steps,
        }


class SubVPSDE(VPSDE):
    """sub-VP: VP's drift, g = √(β(t) (1 − e^{−2∫₀ᵗβ})), s(t) = 1 − e^{−∫₀ᵗβ}."""

    name = "subvp"

    def sde(self, z, t):
        beta = self.beta(t)
        return -0.5 * _col(beta) * z, (beta * -torch.expm1(4 * self._log_mean(t))).sqrt()

    def marginal(self, t):
        log_mean = self._log_mean(t)
        return log_mean.exp(), -torch.expm1(2 * log_mean)

    def discretize(self, z, t, dt=None):
        return SDE.discretize(self, z, t, dt)

    ancestral_step = SDE.ancestral_step  # DDPM's ancestral step is VP's alone.


class ReverseSDE:
    """The reverse-time SDE (with ``probability_flow``, the ODE) of ``sde`` under ``score_fn``."""

    def __init__(self, sde: SDE, score_fn: ScoreFn, probability_flow: bool = False):
        self.forward_sde, self.score_fn, self.probability_flow = sde, score_fn, probability_flow

    def sde(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverse drift f − g² s (ODE: f − ½ g² s): (B, d); diffusion g (ODE: 0): (B,)."""
        drift, diffusion = self.forward_sde.sde(z, t)
        factor = 0.5 if self.probability_flow else 1.0
        drift = drift - _col(diffusion.square()) * self.score_fn(z, t) * factor
        return drift, torch.zeros_like(diffusion) if self.probability_flow else diffusion

    def discretize(
        self, z: torch.Tensor, t: torch.Tensor, dt: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverse-diffusion step: z_{i−1} = z_i − (f_i − G_i² s) + G_i ε."""
        f, g = self.forward_sde.discretize(z, t, dt)
        factor = 0.5 if self.probability_flow else 1.0
        rev_f = f - _col(g.square()) * self.score_fn(z, t) * factor
        return rev_f, torch.zeros_like(g) if self.probability_flow else g


@dataclass(frozen=True)
class SDEConfig:
    """Which SDE and its parameters (VE: σ_min, σ_max; VP / sub-VP: β_min, β_max)."""

    name: str = "vp"
    beta_min: float = 0.1
    beta_max: float = 20.0
    sigma_min: float = 0.01
    sigma_max: float = 50.0
    steps: int = 1000


def make_sde(config: SDEConfig | dict | str = "vp") -> SDE:
    """An SDE from a config, a dict as written by ``SDE.config()``, or a name."""
    if isinstance(config, str):
        config = SDEConfig(name=config)
    elif isinstance(config, dict):
        config = SDEConfig(**config)
    if config.name == "ve":
        return VESDE(config.sigma_min, config.sigma_max, config.steps)
    if config.name in ("vp", "subvp"):
        cls = VPSDE if config.name == "vp" else SubVPSDE
        return cls(config.beta_min, config.beta_max, config.steps)
    raise ValueError(f"sde name must be 've', 'vp' or 'subvp', got {config.name!r}")
