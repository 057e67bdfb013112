"""Samplers for the reverse SDE and the probability-flow ODE (DESIGN.md §4), with one head.

Every sampler is ``sample_X(score_fn, sde, z, ts, *, generator=None, callback=None,
progress=False, **opts) -> SampleResult`` (k-diffusion's pattern): ``z: (B, d)`` the latents at
time ``ts[0]``, ``ts: (N + 1,)`` a decreasing time grid (:func:`time_grid`), ``score_fn(z: (B, d),
t: (B,)) → (B, d)``. ``callback`` receives ``{"i", "t", "z", "z_mean"}`` after step i, with z at
time t = ts[i + 1]. Samplers are registered by name in ``SAMPLERS``, predictors and correctors in
``PREDICTORS`` and ``CORRECTORS``; whatever depends on the SDE's type is a method of the SDE.

Predictors (one step from t to t − Δt):
    Euler–Maruyama       z ← z − f̄ Δt + g √Δt ξ,  f̄ = f − g² s          (reverse SDE)
    reverse diffusion    z ← z − (f_i − G_i² s) + G_i ξ                  (discretised SDE)
    ancestral            DDPM (VP) / NCSN (VE) ancestral step            (``SDE.ancestral_step``)
Corrector: Langevin, z ← z + ε s + √(2ε) ξ, ε = 2 α (r ‖ξ‖ / ‖s‖)², norms averaged over the
batch (signal-to-noise rule with ratio r; α from ``SDE.langevin_alpha``). A score function with a
``corrector`` attribute (a guided score, DESIGN.md §5: weight γ there, λ_t in the predictor) gives
the corrector steps that score instead. Annealed Langevin (NCSN) runs the corrector alone over the
grid's levels; the ODE sampler integrates the probability flow with torchdiffeq.

Every sampler counts its score evaluations (NFE) and takes an explicit ``generator`` (a
``torch.Generator``, or an :class:`~latentnav._chunks.IndexNoise` for noise per sample index);
nothing in the loops reads tensors back to the host (the grid's step sizes are read once, before
the loop). The front doors that start from prior draws of a shape (``sample``, ``sample_chunked``,
``pc_sample``, ``annealed_langevin_sample``, ``ode_sample``) live in
:mod:`latentnav.prior_sampling` and are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from latentnav._checks import check_latents
from latentnav._chunks import IndexNoise
from latentnav.sde import SDE

__all__ = [
    "SampleResult",
    "time_grid",
    "PREDICTORS",
    "CORRECTORS",
    "SAMPLERS",
    "register_predictor",
    "register_corrector",
    "register_sampler",
    "sample_pc",
    "sample_euler_maruyama",
    "sample_reverse_diffusion",
    "sample_ancestral",
    "sample_annealed_langevin",
    "sample_ode",
    "probability_flow",
]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict[str, Any]], None]
PREDICTORS: dict[str, Callable] = {}
CORRECTORS: dict[str, Callable] = {}
SAMPLERS: dict[str, Callable] = {}


@dataclass
class SampleResult:
    """Samples ``z: (B, d)``, the number of score evaluations spent on them, and per-sample
    ``extras`` a caller adds (e.g. the guidance log-ratio ``(B,)``)."""

    z: torch.Tensor
    nfe: int
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def time_grid(
    sde: SDE, steps: int, eps: float = 1e-3, device=None, dtype=torch.float32
) -> torch.Tensor:
    """``steps + 1`` evenly spaced times from T down to ``eps``: (steps + 1,)."""
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be an int ≥ 1, got {steps!r}")
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must be in (0, {sde.T}), got {eps}")
    return torch.linspace(sde.T, eps, steps + 1, device=device, dtype=dtype)


def register_predictor(name: str, discrete: bool = False):
    """Register ``fn(sde, score_fn, z, t, dt, generator) -> (z, z_mean)``; ``discrete`` marks a
    step that needs ``sde.check_discretization``."""

    def add(fn):
        fn.discrete = discrete
        PREDICTORS[name] = fn
        return fn

    return add


def register_corrector(name: str, discrete: bool = True):
    """Register ``fn(sde, score_fn, z, t, dt, generator, snr) -> (z, z_mean)``."""

    def add(fn):
        fn.discrete = discrete
        CORRECTORS[name] = fn
        return fn

    return add


def register_sampler(name: str, default_steps: int | None):
    """Register a sampler with the common head; ``default_steps`` sizes :func:`sample`'s grid."""

    def add(fn):
        fn.default_steps = default_steps
        SAMPLERS[name] = fn
        return fn

    return add


Noise = torch.Generator | IndexNoise | None


def _noise(z: torch.Tensor, generator: Noise) -> torch.Tensor:
    """ξ ~ N(0, I) shaped like z, from a torch generator or the next draw of an IndexNoise."""
    if isinstance(generator, IndexNoise):
        return generator.randn(z.shape, z.dtype, z.device)
    return torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)


def _prior(sde: SDE, shape: tuple[int, int], generator: Noise, device, dtype) -> torch.Tensor:
    """z_T ~ N(0, prior_std² I) of ``shape``, drawn like :func:`_noise`."""
    if isinstance(generator, IndexNoise):
        return sde.prior_std() * generator.randn(shape, dtype, device)
    return sde.prior_sample(shape, generator=generator, device=device, dtype=dtype)


@register_predictor("euler_maruyama")
def euler_maruyama_step(sde: SDE, score_fn: ScoreFn, z, t, dt: float, generator=None):
    """(z, z_mean) after one Euler–Maruyama step of the reverse SDE from t to t − dt."""
    drift, diffusion = sde.reverse(score_fn).sde(z, t)
    z_mean = z - drift * dt
    return z_mean + diffusion[:, None] * dt**0.5 * _noise(z, generator), z_mean


@register_predictor("reverse_diffusion", discrete=True)
def reverse_diffusion_step(sde: SDE, score_fn: ScoreFn, z, t, dt: float, generator=None):
    """(z, z_mean) after one step of the discretised reverse SDE."""
    f, g = sde.reverse(score_fn).discretize(z, t, dt)
    z_mean = z - f
    return z_mean + g[:, None] * _noise(z, generator), z_mean


@register_predictor("ancestral", discrete=True)
def ancestral_step(sde: SDE, score_fn: ScoreFn, z, t, dt: float, generator=None):
    """(z, z_mean) after one ancestral step (DDPM for VP, NCSN for VE)."""
    return sde.ancestral_step(z, score_fn(z, t), t, dt, _noise(z, generator))


@register_predictor("none")
def no_step(sde: SDE, score_fn: ScoreFn, z, t, dt: float, generator=None):
    """No predictor: z unchanged (Langevin alone in :func:`sample_pc`)."""
    return z, z


@register_corrector("langevin")
def langevin_step(sde: SDE, score_fn: ScoreFn, z, t, dt: float, generator=None, snr=0.16):
    """(z, z_mean) after one Langevin corrector step at time t, signal-to-noise ratio ``snr``."""
    score = score_fn(z, t)
    noise = _noise(z, generator)
    alpha = sde.langevin_alpha(t, dt)
    # Norms averaged over the batch, as in score_sde: a per-sample ratio explodes for samples
    # whose score is near zero (at a mode), which in low d is common.
    ratio = noise.norm(dim=1).mean() / score.norm(dim=1).mean().clamp_min(1e-12)
    # Capped at the marginal variance s(t)² (typical steps are ≈ 2 r² s(t)²): a score that is
    # still ≈ 0, as in an untrained model, must not produce an unbounded step.
    step = torch.minimum(2 * alpha * (snr * ratio).square(), sde.marginal(t)[1].square())[:, None]
    z_mean = z + step * score
    return z_mean + (2 * step).sqrt() * noise, z_mean


class _Counted:
    """``score_fn`` counting its evaluations (the corrector's score counted with it)."""

    def __init__(self, score_fn: ScoreFn):
        self.fn, self.nfe = score_fn, 0
        inner = getattr(score_fn, "corrector", score_fn)
        self.corrector = self if inner is score_fn else _Counted(inner)

    def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.fn(z, t)

    @property
    def total(self) -> int:
        return self.nfe + (self.corrector.nfe if self.corrector is not self else 0)


def _steps(sde: SDE, z: torch.Tensor, ts: torch.Tensor) -> list[float]:
    """Check z (B, d) and the grid ts (N + 1,); the step sizes Δt_i = ts[i] − ts[i + 1]."""
    check_latents(z, None, "z")
    if not (isinstance(ts, torch.Tensor) and ts.ndim == 1 and len(ts) >= 2):
        raise ValueError(f"ts must be a 1-D time grid with ≥ 2 points (time_grid), got {ts!r}")
    times = ts.detach().double().cpu()
    dts = (times[:-1] - times[1:]).tolist()
    if min(dts) <= 0 or times[-1] <= 0 or times[0] > sde.T:
        raise ValueError(f"ts must decrease strictly within (0, {sde.T}], got {times.tolist()}")
    return dts


def _loop(steps: int, progress: bool, desc: str):
    return tqdm(range(steps), disable=not progress, desc=desc, leave=False)


@torch.no_grad()
def sample_pc(
    score_fn: ScoreFn,
    sde: SDE,
    z: torch.Tensor,
    ts: torch.Tensor,
    *,
    predictor: str = "reverse_diffusion",
    corrector: str | None = "langevin",
    snr: float = 0.16,
    corrector_steps: int = 1,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> SampleResult:
    """Predictor–corrector sampling over ``ts`` (corrector steps at t_i, then the predictor to
    t_{i+1}); ``corrector=None`` is the predictor alone, ``predictor="none"`` Langevin alone.
    ``denoise`` returns the last step's mean (no noise)."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {tuple(PREDICTORS)}, got {predictor!r}")
    if corrector is not None and corrector not in CORRECTORS:
        raise ValueError(f"corrector must be one of {(*CORRECTORS, None)}, got {corrector!r}")
    dts = _steps(sde, z, ts)
    predict = PREDICTORS[predictor]
    correct = CORRECTORS[corrector] if corrector is not None else None
    if predict.discrete or (correct is not None and correct.discrete):
        sde.check_discretization(max(dts), float(ts[0] - ts[-1]))
    counted = _Counted(score_fn)
    z_mean = z
    for i in _loop(len(dts), progress, "sampling"):
        t = ts[i].expand(len(z))
        if correct is not None:
            for _ in range(corrector_steps):
                z, z_mean = correct(sde, counted.corrector, z, t, dts[i], generator, snr)
        z, z_mean = predict(sde, counted, z, t, dts[i], generator)
        if callback is not None:
            callback({"i": i, "t": ts[i + 1], "z": z, "z_mean": z_mean})
    return SampleResult(z_mean if denoise else z, counted.total)


register_sampler("pc", 1000)(sample_pc)


@register_sampler("em", 1000)
def sample_euler_maruyama(score_fn, sde, z, ts, **kw) -> SampleResult:
    """Euler–Maruyama on the reverse SDE (:func:`sample_pc` without a corrector)."""
    return sample_pc(score_fn, sde, z, ts, predictor="euler_maruyama", corrector=None, **kw)


@register_sampler("reverse_diffusion", 1000)
def sample_reverse_diffusion(score_fn, sde, z, ts, **kw) -> SampleResult:
    """The discretised reverse SDE (:func:`sample_pc` without a corrector)."""
    return sample_pc(score_fn, sde, z, ts, predictor="reverse_diffusion", corrector=None, **kw)


@register_sampler("ancestral", 1000)
def sample_ancestral(score_fn, sde, z, ts, **kw) -> SampleResult:
    """DDPM / NCSN ancestral sampling (:func:`sample_pc` without a corrector)."""
    return sample_pc(score_fn, sde, z, ts, predictor="ancestral", corrector=None, **kw)


@register_sampler("langevin", 9)
@torch.no_grad()
def sample_annealed_langevin(
    score_fn: ScoreFn,
    sde: SDE,
    z: torch.Tensor,
    ts: torch.Tensor,
    *,
    steps_per_level: int = 100,
    step_lr: float = 2e-5,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> SampleResult:
    """NCSN's annealed Langevin dynamics (Song & Ermon 2019) over the levels t_i of ``ts``:
    α_i = step_lr · s(t_i)² / s(t_N)², capped at s(t_i)², z ← z + ½ α_i s + √α_i ξ; ``denoise``
    adds the final Tweedie step z + s(t_N)² s(z, t_N). The cap keeps the rule stable for SDEs
    whose s(ε) is tiny (sub-VP: s ∝ t², uncapped α_0 ≈ 1650)."""
    _steps(sde, z, ts)
    counted = _Counted(score_fn)
    std = sde.marginal(ts)[1]
    alphas = torch.minimum(step_lr * (std / std[-1]).square(), std.square())
    for i in _loop(len(ts), progress, "annealed Langevin"):
        t = ts[i].expand(len(z))
        for _ in range(steps_per_level):
            z = z + 0.5 * alphas[i] * counted(z, t) + alphas[i].sqrt() * _noise(z, generator)
        if callback is not None:
            callback({"i": i, "t": ts[i], "z": z, "z_mean": z})
    if denoise:
        t = ts[-1].expand(len(z))
        z = z + std[-1].square() * counted(z, t)
    return SampleResult(z, counted.total)


def _flow(score_fn, sde, z, times, rtol, atol, method, fixed_grid):
    """Probability-flow ODE from times[0] through ``times`` (torchdiffeq): (len(times), B, d)."""
    from torchdiffeq import odeint

    counted = _Counted(score_fn)
    rsde = sde.reverse(counted, probability_flow=True)

    def drift(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rsde.sde(x, t.expand(len(x)))[0]

    # Adaptive steps land on the last time exactly (step_t) instead of overshooting it, e.g. to
    # t < ε, where the marginal std of VP / sub-VP is undefined. A fixed-grid method steps on
    # the grid itself.
    options = None if fixed_grid else {"step_t": times[-1:]}
    with torch.no_grad():
        out = odeint(drift, z, times, rtol=rtol, atol=atol, method=method, options=options)
    return out, counted.total


_FIXED_GRID = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")


@register_sampler("ode", None)
def sample_ode(
    score_fn: ScoreFn,
    sde: SDE,
    z: torch.Tensor,
    ts: torch.Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    denoise: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> SampleResult:
    """The probability-flow ODE dz = [f − ½ g² s] dt from ts[0] to ts[-1]: an adaptive
    ``method`` (dopri5) reports the solution at every grid time, a fixed-grid one ("euler",
    "rk4", …) steps on the grid. Deterministic: ``generator`` and ``denoise`` are unused."""
    _steps(sde, z, ts)
    out, nfe = _flow(score_fn, sde, z, ts, rtol, atol, method, method in _FIXED_GRID)
    if callback is not None:
        for i in range(1, len(ts)):
            callback({"i": i - 1, "t": ts[i], "z": out[i], "z_mean": out[i]})
    return SampleResult(out[-1], nfe)


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
    ODE (DESIGN.md §4): adaptive ``method`` with ``rtol``/``atol``, or a fixed-grid method with
    ``steps`` even steps. The map is a bijection: forward then back returns z up to tolerance."""
    for name, t in (("t_from", t_from), ("t_to", t_to)):
        if not 0 < t <= sde.T:
            raise ValueError(f"{name} must be in (0, {sde.T}], got {t}")
    if t_from == t_to:
        return SampleResult(z.clone(), 0)
    n = 1 if steps is None else steps
    times = torch.linspace(t_from, t_to, n + 1, device=z.device, dtype=z.dtype)
    out, nfe = _flow(score_fn, sde, z, times, rtol, atol, method, steps is not None)
    return SampleResult(out[-1], nfe)


_FRONT_DOORS = ("sample", "sample_chunked", "pc_sample", "annealed_langevin_sample", "ode_sample")


def __getattr__(name: str):
    """The front doors of :mod:`latentnav.prior_sampling`, importable from here (lazily: that
    module imports this one)."""
    if name in _FRONT_DOORS:
        from latentnav import prior_sampling

        return getattr(prior_sampling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
