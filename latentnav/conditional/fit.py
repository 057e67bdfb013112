"""Plain Adam loops for the conditional estimators and the noisy classifiers (DESIGN.md §6), for
tests and small studies; minibatches are drawn from ``generator``. Shapes: ``z0: (N, d)``."""

from __future__ import annotations

import torch
from torch import nn

from latentnav.conditional.dlsm import CLASSIFIER_LOSSES
from latentnav.conditional.estimators import Estimator

__all__ = ["fit_estimator", "fit_classifier"]


def _check_steps(steps: int, batch: int, lr: float) -> None:
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be an int ≥ 1, got {steps!r}")
    if not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f"batch must be an int ≥ 1, got {batch!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")


def _adam(params, lr: float, steps: int):
    opt = torch.optim.Adam(params, lr=lr)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)


class _EMA:
    """Exponential moving average of ``net``'s parameters with the warm-up of
    ``LatentDiffusion.update_ema``: decay min(β, (1 + k) / (10 + k)) after k updates; β = 0 is
    off. :meth:`copy_to` writes the average into ``net`` at the end of training."""

    def __init__(self, net: nn.Module, beta: float):
        if not 0 <= beta < 1:
            raise ValueError(f"ema must be in [0, 1), got {beta}")
        self.beta, self.k = float(beta), 0
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params] if beta else []

    @torch.no_grad()
    def update(self) -> None:
        if self.beta:
            decay = min(self.beta, (1 + self.k) / (10 + self.k))
            for s, p in zip(self.shadow, self.params, strict=True):
                s.lerp_(p, 1 - decay)
            self.k += 1

    @torch.no_grad()
    def copy_to(self) -> None:
        if self.beta:
            for s, p in zip(self.shadow, self.params, strict=True):
                p.copy_(s)


def fit_estimator(
    estimator: Estimator,
    net: nn.Module,
    z0: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 1000,
    batch: int = 256,
    lr: float = 2e-3,
    ema: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Minimise ``estimator.loss`` over ``net``; ``y: (N, k)``. With ``ema`` = β > 0 the net
    ends with the EMA of its weights (as ``LatentDiffusion``). Returns the loss per step."""
    _check_steps(steps, batch, lr)
    average = _EMA(net, ema)
    if len(y) != len(z0):
        raise ValueError(f"y must have {len(z0)} rows (as z0), got {len(y)}")
    opt, schedule = _adam(net.parameters(), lr, steps)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(z0), (batch,), generator=generator)
        loss = estimator.loss(net, z0[idx], y[idx], generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        average.update()
        losses.append(loss.item())
    average.copy_to()
    return losses


def fit_classifier(
    classifier: nn.Module,
    loss: str,
    score_fn,
    sde,
    z0: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int = 1000,
    batch: int = 256,
    lr: float = 2e-3,
    lam: float = 1.0,
    ema: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Minimise the classifier loss named ``loss`` (``CLASSIFIER_LOSSES``) against the frozen
    ``score_fn``; ``ema`` as in :func:`fit_estimator`. Returns the loss per step."""
    if loss not in CLASSIFIER_LOSSES:
        raise ValueError(f"loss must be one of {tuple(CLASSIFIER_LOSSES)}, got {loss!r}")
    _check_steps(steps, batch, lr)
    average = _EMA(classifier, ema)
    fn = CLASSIFIER_LOSSES[loss]
    opt, schedule = _adam(classifier.parameters(), lr, steps)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(z0), (batch,), generator=generator)
        value = fn(classifier, score_fn, sde, z0[idx], labels[idx], generator=generator, lam=lam)
        opt.zero_grad()
        value.backward()
        opt.step()
        schedule.step()
        average.update()
        losses.append(value.item())
    average.copy_to()
    return losses
