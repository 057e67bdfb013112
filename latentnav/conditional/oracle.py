"""Gaussian classes with closed-form diffused scores and posteriors, and the per-noise-level score
error used to check conditional estimators against them (DESIGN.md §6, issue 14).

Class k is N(μ_k, σ_k² I) with prior weight w_k. Under an SDE with marginal N(m z_0, s² I),

    p_t(z | k) = N(m μ_k, v_k I),   v_k = m² σ_k² + s²
    ∇ log p_t(z | k) = −(z − m μ_k) / v_k
    p_t(k | z) = softmax_k(log w_k + log N(z; m μ_k, v_k I))
    ∇ log p_t(z) = Σ_k p_t(k | z) ∇ log p_t(z | k)

Shapes: ``z: (B, d)``, ``t: (B,)``, ``labels: (B,)``; means (K, d), stds and weights (K,).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from latentnav._checks import check_latents
from latentnav.conditional.condition import check_labels
from latentnav.sde import SDE

__all__ = ["GaussianClasses", "OracleClassifier", "score_error_by_time"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GaussianClasses:
    """A mixture of isotropic Gaussian classes with analytic diffused scores under ``sde``."""

    def __init__(
        self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor | None = None
    ):
        means, stds = torch.as_tensor(means, dtype=torch.float32), torch.as_tensor(stds)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        k = len(means)
        if stds.shape != (k,) or not (stds > 0).all():
            raise ValueError(f"stds must be positive with shape ({k},), got {tuple(stds.shape)}")
        weights = torch.full((k,), 1.0 / k) if weights is None else torch.as_tensor(weights)
        if weights.shape != (k,) or not (weights > 0).all():
            raise ValueError(f"weights must be positive with shape ({k},)")
        self.means, self.stds = means, stds.float()
        self.weights = weights.float() / weights.sum()

    @property
    def num_classes(self) -> int:
        return len(self.means)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None, labels=None):
        """(z0: (n, d), labels: (n,)); labels drawn from the weights unless given."""
        if labels is None:
            labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        check_labels(labels, self.num_classes, None, "labels")
        noise = torch.randn(len(labels), self.dim, generator=generator)
        return self.means[labels] + self.stds[labels, None] * noise, labels

    def _log_joint(self, sde: SDE, z: torch.Tensor, t: torch.Tensor):
        """log w_k + log p_t(z | k): (B, K), the differences z − m μ_k: (B, K, d), v_k: (B, K)."""
        m, s = sde.marginal(t)
        var = m[:, None] ** 2 * self.stds**2 + s[:, None] ** 2
        diff = z[:, None, :] - m[:, None, None] * self.means
        log_n = -0.5 * diff.square().sum(-1) / var - 0.5 * self.dim * (var * 2 * math.pi).log()
        return self.weights.log() + log_n, diff, var

    def posterior(self, sde: SDE, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """p_t(k | z): (B, K)."""
        check_latents(z, self.dim, "z")
        return torch.softmax(self._log_joint(sde, z, t)[0], dim=1)

    def conditional_score(self, sde: SDE, z: torch.Tensor, t: torch.Tensor, labels) -> torch.Tensor:
        """∇ log p_t(z | k = labels): (B, d)."""
        check_latents(z, self.dim, "z")
        labels = torch.as_tensor(labels)
        labels = labels.expand(len(z)) if labels.ndim == 0 else labels
        check_labels(labels, self.num_classes, len(z), "labels")
        _, diff, var = self._log_joint(sde, z, t)
        rows = torch.arange(len(z))
        return -diff[rows, labels] / var[rows, labels, None]

    def score(self, sde: SDE, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The unconditional ∇ log p_t(z): (B, d)."""
        check_latents(z, self.dim, "z")
        log_joint, diff, var = self._log_joint(sde, z, t)
        r = torch.softmax(log_joint, dim=1)
        return -(r[..., None] * diff / var[..., None]).sum(1)


class OracleClassifier(nn.Module):
    """The exact noise-conditional classifier of Gaussian classes: ``forward(z: (B, d), t: (B,))``
    → logits log w_k + log p_t(z | k) (B, K), so softmax = p_t(k | z); ``config`` as a
    :class:`~latentnav.conditional.dlsm.NoisyClassifier`'s, for guidance and navigation."""

    def __init__(self, oracle: GaussianClasses, sde: SDE):
        from latentnav.conditional.dlsm import ClassifierConfig

        super().__init__()
        self.oracle, self.sde = oracle, sde
        self.config = ClassifierConfig(oracle.dim, oracle.num_classes)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        check_latents(z, self.oracle.dim, "z")
        return self.oracle._log_joint(self.sde, z, t)[0]


def score_error_by_time(
    score_fn: ScoreFn,
    exact_fn: ScoreFn,
    sde: SDE,
    z0: torch.Tensor,
    times: torch.Tensor,
    generator: torch.Generator | None = None,
    scale: str = "sigma",
) -> torch.Tensor:
    """E ‖s(z_t, t) − s*(z_t, t)‖² at each time in ``times: (T,)``, z_t = m z_0 + s ξ with
    ``z0: (B, d)`` drawn from the distribution s* is the score of; ``scale="sigma"`` multiplies by
    s(t)² (the error in noise units, comparable across t), ``"none"`` leaves it. Returns (T,)."""
    check_latents(z0, None, "z0")
    if scale not in ("sigma", "none"):
        raise ValueError(f"scale must be 'sigma' or 'none', got {scale!r}")
    errors = []
    with torch.no_grad():
        for t_value in times.tolist():
            t = torch.full((len(z0),), t_value, dtype=z0.dtype)
            xi = torch.randn(z0.shape, generator=generator, dtype=z0.dtype)
            z_t, std = sde.perturb(z0, t, xi)
            err = (score_fn(z_t, t) - exact_fn(z_t, t)).square().sum(1)
            errors.append((err * std.square() if scale == "sigma" else err).mean())
    return torch.stack(errors)
