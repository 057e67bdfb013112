"""Discriminator guidance of a score function (DESIGN.md §5, seed 000 §3.2–§4.2).

    c(z, t) = ∇_z ℓ_ψ(z, t) ≈ ∇log p_t^data(z) − ∇log p_t^model(z)
    predictor score   s_θ(z, t) + λ(t) c(z, t)      dz = [f − g²(s_θ + λ_t c)]dt + g dw̄
    corrector score   s_θ(z, t) + γ(t) c(z, t)      z ← z + ε(s_θ + γ c) + √(2ε) ξ

:func:`guided_score` wraps any ``score_fn(z: (B, d), t: (B,)) -> (B, d)`` into one with the same
signature (so every sampler becomes guided without knowing it) and a ``.corrector`` attribute
carrying γ; samplers use ``getattr(score_fn, "corrector", score_fn)`` for their corrector steps.
Where the weight is 0 for every sample of a call the wrapper returns ``score_fn(z, t)`` itself, so
λ ≡ 0 / γ = 0 reproduces the unguided sampler bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "SCHEDULES",
    "GuidedScore",
    "guided_score",
    "correction",
    "log_ratio",
    "sample_guided",
]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Schedule = Callable[[torch.Tensor, float, float, float, float], torch.Tensor]


def _constant(t: torch.Tensor, w: float, T: float, t_min: float, t_max: float) -> torch.Tensor:
    """λ(t) = w."""
    return torch.full_like(t, w)


def _decreasing(t: torch.Tensor, w: float, T: float, t_min: float, t_max: float) -> torch.Tensor:
    """λ(t) = w (1 − t/T): w at the data, 0 at the prior. Seed 000 §3.4: near the noise both
    marginals approach the same prior, the score is accurate and ℓ* → 0, so a correction there is
    mostly the discriminator's estimation noise; near the data the manifold is complex and the score
    error largest. Linear in t rather than s(t)-based so that it means the same for VE, VP and
    sub-VP."""
    return w * (1 - t / T)


def _interval(t: torch.Tensor, w: float, T: float, t_min: float, t_max: float) -> torch.Tensor:
    """λ(t) = w on [t_min, t_max], 0 outside (guidance interval, Kynkäänniemi et al. 2024)."""
    return torch.where((t >= t_min) & (t <= t_max), w, 0.0).to(t.dtype)


# schedule(t: (B,), weight, T, t_min, t_max) -> λ(t): (B,)
SCHEDULES: dict[str, Schedule] = {
    "constant": _constant,
    "decreasing": _decreasing,
    "interval": _interval,
}


def _logit(discriminator: Callable, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None):
    return discriminator(z, t) if y is None else discriminator(z, t, y)


def correction(
    discriminator: Callable, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    """c = ∇_z ℓ_ψ(z, t[, y]) by autograd, also inside ``torch.no_grad()``; no parameter gradient is
    accumulated and the result is detached. ``z: (B, d)``, ``t: (B,)`` → (B, d)."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(_logit(discriminator, z, t, y).sum(), z)
    return grad


@torch.no_grad()
def log_ratio(
    discriminator: Callable,
    z: torch.Tensor,
    t: torch.Tensor | float,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """ℓ_ψ(z, t) ≈ log p_t^data(z) − log p_t^model(z) per sample: ``z: (B, d)``, ``t``: (B,) or a
    float (e.g. the sampler's last time eps) → (B,). Rank or filter samples by it."""
    if not isinstance(t, torch.Tensor) or t.ndim == 0:
        t = torch.full(z.shape[:1], float(t), device=z.device, dtype=z.dtype)
    return _logit(discriminator, z, t, y)


class GuidedScore:
    """s(z, t) + λ(t) c(z, t) with λ = ``SCHEDULES[schedule](t, weight, T, t_min, t_max)``; the
    correction λc is scaled per sample to norm ≤ ``clip`` when given. ``.corrector`` is the same
    score with ``corrector_weight`` (itself when that equals ``weight``)."""

    def __init__(
        self,
        score_fn: ScoreFn,
        discriminator: Callable,
        weight: float = 1.0,
        *,
        corrector_weight: float | None = None,
        schedule: str = "constant",
        t_min: float | None = None,
        t_max: float | None = None,
        clip: float | None = None,
        y: torch.Tensor | None = None,
        T: float = 1.0,
    ):
        if not callable(score_fn) or not callable(discriminator):
            raise TypeError("score_fn and discriminator must be callables (z, t) -> tensor")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}")
        if not T > 0:
            raise ValueError(f"T must be > 0, got {T}")
        if schedule == "interval":
            if t_min is None or t_max is None or not 0 <= t_min <= t_max <= T:
                raise ValueError(
                    f"schedule 'interval' needs 0 ≤ t_min ≤ t_max ≤ T = {T}, got {t_min}, {t_max}"
                )
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be None or > 0, got {clip}")
        for name, value in (("weight", weight), ("corrector_weight", corrector_weight)):
            if value is not None and not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a float, got {type(value).__name__}")
        self.score_fn, self.discriminator = score_fn, discriminator
        self.weight, self.schedule = float(weight), schedule
        self.t_min = 0.0 if t_min is None else float(t_min)
        self.t_max = T if t_max is None else float(t_max)
        self.clip, self.y, self.T = clip, y, float(T)
        gamma = self.weight if corrector_weight is None else float(corrector_weight)
        self.corrector = self
        if gamma != self.weight:
            self.corrector = GuidedScore(
                score_fn, discriminator, gamma, schedule=schedule, t_min=t_min, t_max=t_max,
                clip=clip, y=y, T=T,
            )  # fmt: skip

    def scaled(self, factor: float) -> GuidedScore:
        """The same guidance with λ and γ multiplied by ``factor`` (boosting doubles them)."""
        return GuidedScore(
            self.score_fn, self.discriminator, self.weight * factor,
            corrector_weight=self.corrector.weight * factor, schedule=self.schedule,
            t_min=self.t_min, t_max=self.t_max, clip=self.clip, y=self.y, T=self.T,
        )  # fmt: skip

    def weights(self, t: torch.Tensor) -> torch.Tensor:
        """λ(t): (B,) → (B,)."""
        return SCHEDULES[self.schedule](t, self.weight, self.T, self.t_min, self.t_max)

    def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Guided score: ``z: (B, d)``, ``t: (B,)`` → (B, d)."""
        if self.weight == 0:
            return self.score_fn(z, t)
        lam = self.weights(t)
        active = lam != 0
        if not bool(active.any()):
            return self.score_fn(z, t)
        score = self.score_fn(z, t)
        term = lam[:, None].to(score.dtype) * correction(self.discriminator, z, t, self.y)
        if self.clip is not None:
            norm = term.norm(dim=1, keepdim=True)
            term = term * (self.clip / norm.clamp_min(1e-30)).clamp(max=1.0)
        return score + torch.where(active[:, None], term, torch.zeros_like(term))

    def __repr__(self) -> str:
        return (
            f"GuidedScore(weight={self.weight}, corrector_weight={self.corrector.weight}, "
            f"schedule={self.schedule!r}, t_min={self.t_min}, t_max={self.t_max}, clip={self.clip})"
        )


def guided_score(
    score_fn: ScoreFn,
    discriminator: nn.Module | Callable,
    weight: float = 1.0,
    *,
    corrector_weight: float | None = None,
    schedule: str = "constant",
    t_min: float | None = None,
    t_max: float | None = None,
    clip: float | None = None,
    y: torch.Tensor | None = None,
    T: float = 1.0,
) -> GuidedScore:
    """``score_fn`` guided by ``discriminator(z, t[, y]) -> logit (B,)`` (DESIGN.md §5): predictor
    weight λ(t) from ``schedule`` scaled by ``weight``, corrector weight γ(t) the same schedule
    scaled by ``corrector_weight`` (default ``weight``). ``T``: the SDE's end time."""
    return GuidedScore(
        score_fn, discriminator, weight, corrector_weight=corrector_weight, schedule=schedule,
        t_min=t_min, t_max=t_max, clip=clip, y=y, T=T,
    )  # fmt: skip


def sample_guided(
    guided: GuidedScore,
    sde,
    z: torch.Tensor,
    ts: torch.Tensor,
    sampler: str = "pc",
    *,
    boost_rounds: int = 0,
    boost_time: float = 0.3,
    generator: torch.Generator | None = None,
    **opts,
):
    """Guided sampling with the per-sample log-ratio ℓ_ψ(z, t_N) of the result in
    ``extras["log_ratio"]`` (B,), so samples can be ranked or filtered (DESIGN.md §5).

    Boosting (DG's option): for ``boost_rounds`` rounds, every sample whose log-ratio is negative
    (the discriminator calls it a model sample) is re-noised by the forward SDE from t_N to
    ``boost_time`` and sampled back over the grid's times below it with the guidance doubled;
    ``extras["boosted"]`` (B,) counts the rounds each sample took. ``z: (B, d)`` at ts[0]; the
    sampler is picked by name from :data:`latentnav.sampling.SAMPLERS`, ``opts`` go to it."""
    from latentnav.sampling import SAMPLERS

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {sampler!r}")
    if not (isinstance(boost_rounds, int) and boost_rounds >= 0):
        raise ValueError(f"boost_rounds must be an int ≥ 0, got {boost_rounds!r}")
    t_end = float(ts[-1])
    if boost_rounds and guided.y is not None:
        raise ValueError("boosting re-samples a subset of the batch: not with class labels y")
    if boost_rounds and not t_end < boost_time <= float(ts[0]):
        raise ValueError(f"boost_time must be in ({t_end}, {float(ts[0])}], got {boost_time}")
    run = SAMPLERS[sampler]
    result = run(guided, sde, z, ts, generator=generator, **opts)
    z, nfe = result.z, result.nfe
    ratio = log_ratio(guided.discriminator, z, t_end, guided.y)
    boosted = torch.zeros(len(z), dtype=torch.int64, device=z.device)
    if boost_rounds:
        tail = torch.cat([ts.new_tensor([boost_time]), ts[ts < boost_time]])
        t_b = torch.full((len(z),), boost_time, device=z.device, dtype=z.dtype)
        m_end, s_end = sde.marginal(torch.full_like(t_b, t_end))
        m_b, s_b = sde.marginal(t_b)
    stronger = guided
    for _ in range(boost_rounds):
        bad = (ratio < 0).nonzero().squeeze(1)  # one host sync per round, not per step
        if len(bad) == 0:
            break
        stronger = stronger.scaled(2.0)
        # Forward transition from t_N to t_b: z_b = (m_b/m_N) z + sqrt(s_b² − (m_b/m_N)² s_N²) ξ.
        a = (m_b / m_end)[bad, None]
        std = (s_b[bad].square() - a[:, 0].square() * s_end[bad].square()).clamp_min(0).sqrt()
        noise = torch.randn(z[bad].shape, generator=generator, device=z.device, dtype=z.dtype)
        again = run(stronger, sde, a * z[bad] + std[:, None] * noise, tail, generator=generator,
                    **opts)  # fmt: skip
        z = z.index_copy(0, bad, again.z)
        nfe += again.nfe
        ratio = ratio.index_copy(0, bad, log_ratio(guided.discriminator, again.z, t_end, guided.y))
        boosted = boosted.index_add(0, bad, torch.ones_like(bad))
    result.z, result.nfe = z, nfe
    result.extras.update(log_ratio=ratio, boosted=boosted)
    return result
