"""Samplers for the reverse SDE and the probability-flow ODE (DESIGN.md §4), k-diffusion style:
small step functions, and loops that compose them.

Predictors (one step from t to t − Δt):
    Euler–Maruyama       z ← z − f̄ Δt + g √Δt ξ,  f̄ = f − g² s          (reverse SDE)
    reverse diffusion    z ← z − (f_i − G_i² s) + G_i ξ                  (discretised SDE)
    ancestral            DDPM (VP) / NCSN (VE) ancestral step
Corrector: Langevin, z ← z + ε s + √(2ε) ξ, ε = 2 α (r ‖ξ‖ / ‖s‖)², norms averaged over the
batch (signal-to-noise rule with ratio r; α = 1 − β_i for VP / sub-VP, 1 for VE). Annealed
Langevin (NCSN) runs the corrector alone over a ladder of noise levels. The ODE sampler
integrates the probability flow with torchdiffeq (adaptive dopri5 by default), batched on the
latents' device.

Time grid: N steps from T down to ε, t_i = T − i Δt, Δt = (T − ε)/N. Shapes: samples ``(B, d)``;
``score_fn(z: (B, d), t: (B,)) → (B, d)``. Every loop counts its score evaluations (NFE) and takes
an explicit ``generator``; nothing in the loops reads tensors back to the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from latentnav.sde import SDE, VESDE, VPSDE, ReverseSDE

__all__ = [
    "SampleResult",
    "euler_maruyama_step",
    "reverse_diffusion_step",
    "ancestral_step",
    "langevin_step",
    "pc_sample",
    "annealed_langevin_sample",
    "ode_sample",
    "probability_flow",
    "sample",
    "SAMPLERS",
]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICTORS = ("euler_maruyama", "reverse_diffusion", "ancestral", "none")
SAMPLERS = ("em", "pc", "reverse_diffusion", "ancestral", "langevin", "ode")


@dataclass
class SampleResult:
    """Samples ``z: (B, d)`` and the number of score-function evaluations spent on them."""

    z: torch.Tensor
    nfe: int


def _noise(z: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)


def euler_maruyama_step(rsde: ReverseSDE, z, t, dt: float, generator=None):
    """(z, z_mean) after one Euler–Maruyama step of the reverse SDE from t to t − dt."""
    drift, diffusion = rsde.sde(z, t)
    z_mean = z - drift * dt
    return z_mean + diffusion[:, None] * dt**0.5 * _noise(z, generator), z_mean


def reverse_diffusion_step(rsde: ReverseSDE, z, t, dt: float, generator=None):
    """(z, z_mean) after one step of the discretised reverse SDE."""
    f, g = rsde.discretize(z, t, dt)
    z_mean = z - f
    return z_mean + g[:, None] * _noise(z, generator), z_mean


def ancestral_step(sde: SDE, score_fn: ScoreFn, z, t, dt: float, generator=None):
    """(z, z_mean) after one ancestral step (DDPM for VP, NCSN for VE)."""
    score = score_fn(z, t)
    if isinstance(sde, VESDE):
        sigma = sde.sigma(t)
        prev = sde.previous_sigma(t, dt)
        var = sigma.square() - prev.square()
        z_mean = z + score * var[:, None]
        std = (prev.square() * var / sigma.square()).sqrt()
        return z_mean + std[:, None] * _noise(z, generator), z_mean
    if type(sde) is VPSDE:
        beta = sde.beta(t) * dt
        z_mean = (z + beta[:, None] * score) / (1 - beta).sqrt()[:, None]
        return z_mean + beta.sqrt()[:, None] * _noise(z, generator), z_mean
    raise ValueError(f"ancestral sampling is defined for the VE and VP SDEs, not {sde.name!r}")


def langevin_step(sde: SDE, score_fn: ScoreFn, z, t, dt: float, snr: float, generator=None):
    """(z, z_mean) after one Langevin corrector step at time t, signal-to-noise ratio ``snr``."""
    score = score_fn(z, t)
    noise = _noise(z, generator)
    alpha = 1.0 if isinstance(sde, VESDE) else 1 - sde.beta(t) * dt
    # Norms averaged over the batch, as in score_sde: a per-sample ratio explodes for samples
    # whose score is near zero (at a mode), which in low d is common.
    ratio = noise.norm(dim=1).mean() / score.norm(dim=1).mean().clamp_min(1e-12)
    # Capped at the marginal variance s(t)² (typical steps are ≈ 2 r² s(t)²): a score that is
    # still ≈ 0, as in an untrained model, must not produce an unbounded step.
    step = torch.minimum(2 * alpha * (snr * ratio).square(), sde.marginal(t)[1].square())[:, None]
    z_mean = z + step * score
    return z_mean + (2 * step).sqrt() * noise, z_mean


def _start(sde, shape, z_T, generator, device, dtype):
    if z_T is not None:
        if tuple(z_T.shape) != tuple(shape):
            raise ValueError(f"z_T must have shape {tuple(shape)}, got {tuple(z_T.shape)}")
        return z_T
    return sde.prior_sample(shape, generator=generator, device=device, dtype=dtype)


def _check(steps: int, eps: float, sde: SDE) -> None:
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be an int ≥ 1, got {steps!r}")
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must be in (0, {sde.T}), got {eps}")


@torch.no_grad()
def pc_sample(
    score_fn: ScoreFn,
    sde: SDE,
    shape: tuple[int, int],
    predictor: str = "reverse_diffusion",
    corrector: str | None = "langevin",
    steps: int = 1000,
    snr: float = 0.16,
    corrector_steps: int = 1,
    eps: float = 1e-3,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    z_T: torch.Tensor | None = None,
    progress: bool = False,
) -> SampleResult:
    """Predictor–corrector sampling; with ``corrector=None`` it is the predictor alone, with
    ``predictor="none"`` Langevin alone. ``denoise`` returns the last step's mean (no noise)."""
    _check(steps, eps, sde)
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    if corrector not in (None, "langevin"):
        raise ValueError(f"corrector must be 'langevin' or None, got {corrector!r}")
    dt = (sde.T - eps) / steps
    discrete = predictor in ("reverse_diffusion", "ancestral") or corrector is not None
    if discrete and isinstance(sde, VPSDE) and sde.beta_max * dt >= 1:
        need = int(sde.beta_max * (sde.T - eps)) + 1
        raise ValueError(
            f"steps={steps} is too few for the {sde.name} discretisation (β_max·Δt must be < 1): "
            f"use steps ≥ {need}, or the 'em' / 'ode' sampler"
        )
    z = _start(sde, shape, z_T, generator, device, dtype)
    rsde = sde.reverse(score_fn)
    grid = torch.linspace(sde.T, eps + dt, steps, device=z.device, dtype=z.dtype)
    z_mean, nfe = z, 0
    for i in tqdm(range(steps), disable=not progress, desc="sampling"):
        t = grid[i].expand(len(z))
        if corrector is not None:
            for _ in range(corrector_steps):
                z, z_mean = langevin_step(sde, score_fn, z, t, dt, snr, generator)
            nfe += corrector_steps
        if predictor == "euler_maruyama":
            z, z_mean = euler_maruyama_step(rsde, z, t, dt, generator)
        elif predictor == "reverse_diffusion":
            z, z_mean = reverse_diffusion_step(rsde, z, t, dt, generator)
        elif predictor == "ancestral":
            z, z_mean = ancestral_step(sde, score_fn, z, t, dt, generator)
        nfe += predictor != "none"
    return SampleResult(z_mean if denoise else z, nfe)


@torch.no_grad()
def annealed_langevin_sample(
    score_fn: ScoreFn,
    sde: SDE,
    shape: tuple[int, int],
    levels: int = 10,
    steps_per_level: int = 100,
    step_lr: float = 2e-5,
    eps: float = 1e-3,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    z_T: torch.Tensor | None = None,
) -> SampleResult:
    """NCSN's annealed Langevin dynamics (Song & Ermon 2019) over ``levels`` times from T to ε:
    step α_i = step_lr · s(t_i)² / s(ε)², z ← z + ½ α_i s + √α_i ξ; ``denoise`` adds the final
    Tweedie step z + s(ε)² s(z, ε)."""
    _check(levels, eps, sde)
    z = _start(sde, shape, z_T, generator, device, dtype)
    times = torch.linspace(sde.T, eps, levels, device=z.device, dtype=z.dtype)
    std = sde.marginal(times)[1]
    for i in range(levels):
        t = times[i].expand(len(z))
        alpha = step_lr * (std[i] / std[-1]).square()
        for _ in range(steps_per_level):
            z = z + 0.5 * alpha * score_fn(z, t) + alpha.sqrt() * _noise(z, generator)
    nfe = levels * steps_per_level
    if denoise:
        t = times[-1].expand(len(z))
        z = z + std[-1].square() * score_fn(z, t)
        nfe += 1
    return SampleResult(z, nfe)


def probability_flow(
    score_fn: ScoreFn,
    sde: SDE,
    z: torch.Tensor,
    t_from: float,
    t_to: float,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    steps: int | None = None,
) -> SampleResult:
    """z (B, d) at time ``t_from`` carried to ``t_to`` (either direction) by the probability-flow
    ODE dz = [f − ½ g² s] dt (DESIGN.md §4) with torchdiffeq: adaptive ``method`` with
    ``rtol``/``atol``, or a fixed-grid method such as "euler"/"rk4" with ``steps`` steps. The map
    is a bijection: carrying forward then back returns z up to the solver's tolerance."""
    from torchdiffeq import odeint

    for name, t in (("t_from", t_from), ("t_to", t_to)):
        if not 0 < t <= sde.T:
            raise ValueError(f"{name} must be in (0, {sde.T}], got {t}")
    rsde = sde.reverse(score_fn, probability_flow=True)
    nfe = 0

    def drift(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        return rsde.sde(x, t.expand(len(x)))[0]

    if t_from == t_to:
        return SampleResult(z.clone(), 0)
    span = torch.tensor([t_from, t_to], device=z.device, dtype=z.dtype)
    # Adaptive steps land on t_to exactly (step_t) instead of overshooting it, e.g. to t < ε,
    # where the marginal std of VP / sub-VP is undefined.
    options = {"step_t": span[1:]}
    if steps is not None:
        options = {"step_size": abs(t_to - t_from) / steps}
    with torch.no_grad():
        out = odeint(drift, z, span, rtol=rtol, atol=atol, method=method, options=options)
    return SampleResult(out[-1], nfe)


def ode_sample(
    score_fn: ScoreFn,
    sde: SDE,
    shape: tuple[int, int],
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    steps: int | None = None,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    z_T: torch.Tensor | None = None,
) -> SampleResult:
    """The probability-flow ODE from T to ε (:func:`probability_flow`) from prior samples."""
    if steps is not None:
        _check(steps, eps, sde)
    z = _start(sde, shape, z_T, generator, device, dtype)
    return probability_flow(score_fn, sde, z, sde.T, eps, rtol, atol, method, steps)


def sample(
    score_fn: ScoreFn, sde: SDE, shape: tuple[int, int], sampler: str = "pc", **kwargs
) -> SampleResult:
    """One entry point: "em" (Euler–Maruyama), "reverse_diffusion", "ancestral", "pc"
    (reverse diffusion + Langevin), "langevin" (annealed Langevin), "ode" (probability flow)."""
    if sampler == "em":
        return pc_sample(score_fn, sde, shape, "euler_maruyama", None, **kwargs)
    if sampler in ("reverse_diffusion", "ancestral"):
        return pc_sample(score_fn, sde, shape, sampler, None, **kwargs)
    if sampler == "pc":
        kwargs.setdefault("predictor", "reverse_diffusion")
        return pc_sample(score_fn, sde, shape, corrector="langevin", **kwargs)
    if sampler == "langevin":
        return annealed_langevin_sample(score_fn, sde, shape, **kwargs)
    if sampler == "ode":
        return ode_sample(score_fn, sde, shape, **kwargs)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
