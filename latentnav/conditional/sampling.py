"""One sampling API for every conditional latent model (DESIGN.md §6, issue 14):

    model.sample(n, condition, method="em", *, generator=None, **opts) -> SampleResult

A conditional model turns a fixed condition into a score function s(z, t | y) ≈ ∇_z log p_t(z | y)
(``score_fn(condition, n, generator) -> (z: (B, d), t: (B,)) → (B, d)``) and runs it through the
shared sampler head (:func:`latentnav.sampling.sample`, samplers picked by name from ``SAMPLERS``;
``opts``: ``steps``, ``eps``, ``callback``, ``z_T``, … as there). Models:

    EstimatorModel(estimator, net)   CDE, CDiffE, CMDE, VS-CMDE: ``estimator.score(net, y)``; the
                                     joint estimators redraw y_t ~ p(y_t | y) from ``generator``
                                     at every score call (every step)
    ClassifierGuidance(score_fn, classifier, sde, scale)
                                     s(z, t) + α ∇_z log p(y | z, t) (DLSM, CE-only; α > 1 with
                                     the CE-only classifier is the "scaling" baseline)
    OracleModel(oracle, sde)         the exact ∇ log p_t(z | k) of :class:`GaussianClasses`

Conditions: a class label (int) or labels ``(n,)`` of an integer dtype in [0, K); for estimators
also a condition vector ``(1, k)`` / ``(n, k)`` or a :class:`Measurement` y = A(x) with its
operator. ``method="em"`` by default: the joint estimators' scores are random (y_t redrawn), which
an adaptive ODE solver cannot step on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from latentnav.conditional.condition import check_condition, check_labels
from latentnav.conditional.dlsm import classifier_guided_score
from latentnav.conditional.estimators import Estimator
from latentnav.conditional.operators import Operator
from latentnav.conditional.oracle import GaussianClasses
from latentnav.sampling import SAMPLERS, SampleResult, ScoreFn, sample
from latentnav.sde import SDE

__all__ = [
    "Measurement",
    "class_labels",
    "ConditionalModel",
    "EstimatorModel",
    "ClassifierGuidance",
    "OracleModel",
    "for_diffusion",
]


@dataclass(frozen=True)
class Measurement:
    """A measurement ``y = operator(x)`` (B, C, H', W') and how it becomes a condition vector:
    y flattened, or ``encoder(operatorᵀ y)`` (as :meth:`Operator.condition`): (B, k)."""

    y: torch.Tensor
    operator: Operator
    encoder: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.operator, Operator):
            raise TypeError(f"operator must be an Operator, got {type(self.operator).__name__}")
        if not isinstance(self.y, torch.Tensor) or self.y.ndim < 2 or len(self.y) == 0:
            shape = tuple(self.y.shape) if isinstance(self.y, torch.Tensor) else type(self.y)
            raise ValueError(f"y must be a measurement batch (B, ...) with B ≥ 1, got {shape}")

    def vector(self) -> torch.Tensor:
        if self.encoder is None:
            return self.y.flatten(1)
        with torch.no_grad():
            return self.encoder(self.operator.adjoint(self.y))


def class_labels(condition: object, n: int, num_classes: int) -> torch.Tensor:
    """One label (int or 0-d integer tensor) or labels (n,) → labels (n,) in [0, num_classes)."""
    if isinstance(condition, bool) or (
        isinstance(condition, torch.Tensor) and condition.dtype == torch.bool
    ):
        raise TypeError("condition must be class labels of an integer dtype, got bool")
    if isinstance(condition, int):
        condition = torch.tensor(condition)
    if not isinstance(condition, torch.Tensor):
        raise TypeError(
            "condition must be a class label (int) or labels (n,) of an integer dtype, "
            f"got {type(condition).__name__}"
        )
    if condition.is_floating_point() or condition.is_complex():
        raise TypeError(f"condition labels must have an integer dtype, got {condition.dtype}")
    if condition.ndim == 0:
        condition = condition.expand(n)
    if condition.ndim != 1 or len(condition) != n:
        raise ValueError(
            f"condition must be one label or labels of shape ({n},) (n = {n}), "
            f"got shape {tuple(condition.shape)}"
        )
    return check_labels(condition, num_classes, n, "condition")


class ConditionalModel:
    """Base: ``sde``, ``latent_dim``, ``device`` and ``score_fn(condition, n, generator)``."""

    sde: SDE
    latent_dim: int
    device: torch.device = torch.device("cpu")

    def score_fn(self, condition: object, n: int, generator=None) -> ScoreFn:
        raise NotImplementedError

    def sample(
        self,
        n: int,
        condition: object,
        method: str = "em",
        *,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
        **opts,
    ) -> SampleResult:
        """n latents ``z: (n, d)`` from p(z | condition) with the sampler ``method`` (SAMPLERS)."""
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise ValueError(f"n must be an int ≥ 1, got {n!r}")
        if method not in SAMPLERS:
            raise ValueError(f"method must be one of {tuple(SAMPLERS)}, got {method!r}")
        if condition is None:
            raise ValueError("condition is required: a label, labels (n,) or a condition vector")
        score = self.score_fn(condition, n, generator)
        device = self.device if device is None else device
        shape = (n, self.latent_dim)
        return sample(score, self.sde, shape, method, generator=generator, device=device, **opts)


def _device(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class EstimatorModel(ConditionalModel):
    """A trained conditional estimator (CDE, CDiffE, CMDE, VS-CMDE) with its network."""

    def __init__(self, estimator: Estimator, net: nn.Module):
        if not isinstance(estimator, Estimator):
            raise TypeError(f"estimator must be an Estimator, got {type(estimator).__name__}")
        self.estimator, self.net, self.sde = estimator, net, estimator.sde
        self.latent_dim = estimator.latent_dim(net)
        self.device = _device(net)

    def condition_vector(self, condition: object, n: int) -> torch.Tensor:
        """Labels → one-hot (n, k); a Measurement → its vector; a vector (1, k) / (n, k) checked."""
        k = self.estimator.cond_dim
        if isinstance(condition, Measurement):
            condition = condition.vector()
        if isinstance(condition, torch.Tensor) and condition.is_floating_point():
            batch = 1 if condition.ndim == 2 and len(condition) == 1 else n
            return check_condition(condition, k, batch, "condition").to(self.device)
        labels = class_labels(condition, n, k)
        return torch.nn.functional.one_hot(labels, k).float().to(self.device)

    def score_fn(self, condition, n, generator=None):
        return self.estimator.score(self.net, self.condition_vector(condition, n), generator)


class ClassifierGuidance(ConditionalModel):
    """s(z, t) + α ∇_z log p(y | z, t) with a noise-conditional ``classifier(z, t) → (B, K)``."""

    def __init__(self, score_fn: ScoreFn, classifier: nn.Module, sde: SDE, scale: float = 1.0):
        if not callable(score_fn):
            raise TypeError("score_fn must be a callable (z, t) -> (B, d)")
        if not scale >= 0:
            raise ValueError(f"scale must be ≥ 0, got {scale}")
        self.base, self.classifier, self.sde, self.scale = score_fn, classifier, sde, float(scale)
        self.latent_dim = classifier.config.latent_dim
        self.device = _device(classifier)

    def score_fn(self, condition, n, generator=None):
        labels = class_labels(condition, n, self.classifier.config.num_classes).to(self.device)
        return classifier_guided_score(self.base, self.classifier, labels, self.scale)


class OracleModel(ConditionalModel):
    """The exact conditional score of Gaussian classes under ``sde`` (a known-answer model)."""

    def __init__(self, oracle: GaussianClasses, sde: SDE):
        self.oracle, self.sde, self.latent_dim = oracle, sde, oracle.dim

    def score_fn(self, condition, n, generator=None):
        labels = class_labels(condition, n, self.oracle.num_classes)
        return lambda z, t: self.oracle.conditional_score(self.sde, z, t, labels)


def for_diffusion(
    diffusion: nn.Module,
    score_fn: ScoreFn,
    guidance: nn.Module | None = None,
    scale: float = 1.0,
    conditional: ConditionalModel | None = None,
) -> ConditionalModel:
    """The conditional model :meth:`LatentDiffusion.sample` delegates to: ``guidance`` (a noisy
    classifier) guiding ``score_fn`` (the diffusion's score), or a ``conditional`` model."""
    if (guidance is None) == (conditional is None):
        raise ValueError("condition= needs exactly one of guidance= (a classifier) or conditional=")
    model = conditional or ClassifierGuidance(score_fn, guidance, diffusion.sde, scale)
    if not isinstance(model, ConditionalModel):
        raise TypeError(f"conditional must be a ConditionalModel, got {type(model).__name__}")
    if model.latent_dim != diffusion.latent_dim:
        raise ValueError(
            f"the conditional model has latent dim {model.latent_dim}, "
            f"the diffusion {diffusion.latent_dim}"
        )
    return model
