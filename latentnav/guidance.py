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

__all__ = ["SCHEDULES", "GuidedScore", "guided_score", "correction", "log_ratio"]

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
