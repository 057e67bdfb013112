"""Denoising likelihood score matching (DESIGN.md §6, seed 003) for a noise-conditional latent
classifier p(y | z̃, t; θ), and classifier guidance with it.

With z̃ = m(t) z + s(t) ξ (so ∇_z̃ log p(z̃ | z) = −(z̃ − m z) / s², VE's (z − z̃)/σ² when m = 1):

    CE     E −log p(y | z̃, t; θ)                                            (the baseline)
    DLSM'  E ½ s(t)² ‖∇_z̃ log p(y | z̃, t; θ) + s_φ(z̃, t) − ∇_z̃ log p(z̃ | z)‖²   (s_φ frozen)
    total  DLSM' + λ · CE

DLSM' is weighted by s(t)² (the σ² weighting of DSM; the minimiser is unchanged, the variance at
small t is bounded). The guided score is s(z̃, t) + α ∇_z̃ log p(y | z̃, t); α > 1 with the CE-only
classifier is the "scaling" baseline. Shapes: ``z: (B, d)``, ``t: (B,)``, ``labels: (B,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latentnav._checks import check_latents
from latentnav.conditional.condition import check_labels
from latentnav.losses import sample_times
from latentnav.score_net import time_embedding
from latentnav.sde import SDE

__all__ = [
    "ClassifierConfig",
    "NoisyClassifier",
    "kernel_score",
    "log_likelihood_grad",
    "ce_loss",
    "dlsm_loss",
    "CLASSIFIER_LOSSES",
    "classifier_guided_score",
]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ClassifierConfig:
    latent_dim: int
    num_classes: int
    width: int = 128
    depth: int = 3
    embed_dim: int = 32

    def __post_init__(self) -> None:
        for name in ("latent_dim", "width", "depth", "embed_dim"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise ValueError(f"num_classes must be an int ≥ 2, got {self.num_classes!r}")
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {self.embed_dim}")


class NoisyClassifier(nn.Module):
    """Logits of p(y | z̃, t): MLP([z̃, e(t)]) → (B, K)."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = c = config
        layers: list[nn.Module] = []
        for i in range(c.depth):
            layers += [nn.Linear(c.latent_dim + c.embed_dim if i == 0 else c.width, c.width)]
            layers += [nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.Linear(c.width, c.num_classes))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([z, time_embedding(t, self.config.embed_dim)], 1))


def kernel_score(sde: SDE, z_t: torch.Tensor, z0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """∇_z̃ log p(z̃ | z) = −(z̃ − m(t) z) / s(t)²: (B, d)."""
    m, s = sde.marginal(t)
    return -(z_t - m[:, None] * z0) / s[:, None].square()


def log_likelihood_grad(
    classifier: nn.Module,
    z: torch.Tensor,
    t: torch.Tensor,
    labels: torch.Tensor,
    create_graph: bool = False,
) -> torch.Tensor:
    """∇_z log p(labels | z, t; θ): (B, d), under autograd even inside ``torch.no_grad``;
    ``create_graph`` keeps the graph for a loss on it."""
    with torch.enable_grad():
        z_in = z if (create_graph and z.requires_grad) else z.detach().requires_grad_(True)
        log_p = F.log_softmax(classifier(z_in, t), dim=1)
        picked = log_p.gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, z_in, create_graph=create_graph)
    return grad


def _noisy(sde, z0, eps, generator):
    t = sample_times(len(z0), sde, eps, generator, z0.device)
    xi = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
    z_t, std = sde.perturb(z0, t, xi)
    return z_t, t, std


def _check(classifier, z0, labels):
    check_latents(z0, None, "z0")
    check_labels(labels, classifier.config.num_classes, len(z0), "labels")


def ce_loss(classifier, score_fn, sde, z0, labels, *, generator=None, eps=1e-3, lam=1.0):
    """Cross-entropy on diffused latents, E −log p(y | z̃, t) (``score_fn`` and ``lam`` unused)."""
    _check(classifier, z0, labels)
    z_t, t, _ = _noisy(sde, z0, eps, generator)
    return F.cross_entropy(classifier(z_t, t), labels)


def dlsm_loss(classifier, score_fn, sde, z0, labels, *, generator=None, eps=1e-3, lam=1.0):
    """DLSM' + λ CE against the frozen prior score ``score_fn(z, t)``."""
    _check(classifier, z0, labels)
    if not lam >= 0:
        raise ValueError(f"lam must be ≥ 0, got {lam}")
    z_t, t, std = _noisy(sde, z0, eps, generator)
    z_t = z_t.detach().requires_grad_(True)
    grad = log_likelihood_grad(classifier, z_t, t, labels, create_graph=True)
    with torch.no_grad():
        prior = score_fn(z_t.detach(), t)
        target = kernel_score(sde, z_t.detach(), z0, t)
    dlsm = 0.5 * (std[:, None].square() * (grad + prior - target).square()).sum(1).mean()
    if lam == 0:
        return dlsm
    return dlsm + lam * F.cross_entropy(classifier(z_t.detach(), t), labels)


CLASSIFIER_LOSSES: dict[str, Callable] = {"ce": ce_loss, "dlsm": dlsm_loss}


def classifier_guided_score(
    score_fn: ScoreFn, classifier: nn.Module, y: int | torch.Tensor, scale: float = 1.0
) -> ScoreFn:
    """s(z, t) + α ∇_z log p(y | z, t) with α = ``scale``; ``y`` one label or labels (B,)."""
    if not scale >= 0:
        raise ValueError(f"scale must be ≥ 0, got {scale}")
    k = classifier.config.num_classes
    y = torch.as_tensor(y)
    check_labels(y.reshape(-1), k, None, "y")
    if y.ndim > 1:
        raise ValueError(f"y must be one label or labels (B,), got shape {tuple(y.shape)}")

    def guided(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        labels = y.expand(len(z)) if y.ndim == 0 else y
        if len(labels) != len(z):
            raise ValueError(f"y must have batch size {len(z)} (as z), got {len(labels)}")
        return score_fn(z, t) + scale * log_likelihood_grad(classifier, z, t, labels.to(z.device))

    return guided
