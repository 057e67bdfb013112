"""Class-conditional navigation (DESIGN.md §3, §6; issue 14): the path optimiser's interior points
moved by Adam on a smoothness term plus a class term, so that a path between two latents of one
class stays in that class.

    LatentSmoothness()               T · Σ_k ‖z_{k+1} − z_k‖²               (latent path energy)
    ClassLikelihood(p(y|z), ν, y)    ν · Σ_{k=1}^{T−1} −log p(y | z_k)      (stay in class y)

Without a label the class term is the endpoints' (−log(p(ŷ_0 | z_k) + p(ŷ_T | z_k)), ŷ the
classifier's argmax at z_a, z_b, as :class:`~latentnav.navigation.energy.EndpointClasses`). The
classifier is any ``z: (N, d) → logits (N, K)`` (a :class:`~latentnav.latent_classifier.
LatentClassifier` on the AAE's latents), or a noise-conditional one ``(z, t) → logits`` (DLSM or
CE-only :class:`~latentnav.conditional.dlsm.NoisyClassifier`) read at noise level ``t``.
``smoothness="decoded"`` uses the decoded-path energy :class:`~latentnav.navigation.energy.
Smoothness` instead (needs the AAE's decoder).

Records: ``energy`` (B,), ``iterations`` (B,) as the path optimiser; ``log_p`` (B, T + 1) the
class term's log p(y | z_k) per point; ``in_class`` (B, T + 1) whether the classifier's argmax is
y (either endpoint class without a label). Shapes: z_a, z_b (B, d); paths (B, T + 1, d).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import torch
from torch import nn

from latentnav._modules import frozen
from latentnav.interpolation import interpolate
from latentnav.navigation.energy import Energy, PathContext, Smoothness
from latentnav.navigation.methods import Method, register_method
from latentnav.navigation.optimizer import OptimizerConfig, optimize
from latentnav.navigation.path import LatentPath

__all__ = ["AtNoiseLevel", "LatentSmoothness", "ClassLikelihood", "ClassPath", "SMOOTHNESS"]


class AtNoiseLevel(nn.Module):
    """A noise-conditional classifier ``(z, t) → logits`` read at a fixed t: z (N, d) → (N, K)."""

    def __init__(self, classifier: nn.Module, t: float):
        super().__init__()
        if not t > 0:
            raise ValueError(f"t must be > 0 (the noise level to read the classifier at), got {t}")
        self.classifier, self.t = classifier, float(t)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(z, torch.full((len(z),), self.t, dtype=z.dtype, device=z.device))


class LatentSmoothness:
    """T · Σ_k ‖z_{k+1} − z_k‖² → (B,)."""

    def __call__(self, context: PathContext) -> torch.Tensor:
        return context.steps * context.z.diff(dim=1).square().sum((1, 2))

    def config(self) -> dict[str, Any]:
        return {"term": "latent_smoothness"}


SMOOTHNESS = {"latent": LatentSmoothness, "decoded": Smoothness}


class ClassLikelihood:
    """ν · Σ_{k=1}^{T−1} −log p(y | z_k) → (B,), y = ``label`` or the endpoints' classes."""

    def __init__(self, classifier: nn.Module, weight: float, label: int | None = None):
        if classifier is None:
            raise ValueError("the class term needs a classifier: classifier=")
        if not weight >= 0:
            raise ValueError(f"weight (ν) must be ≥ 0, got {weight}")
        if label is not None and not (isinstance(label, int) and label >= 0):
            raise ValueError(f"label must be None or an int ≥ 0, got {label!r}")
        self.classifier, self.weight, self.label = classifier, float(weight), label

    def log_p(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, n, d) → (log p(y | z_k) (B, n), whether argmax_k p(· | z_k) is y (B, n))."""
        b, n, d = z.shape
        logp = self.classifier(z.reshape(b * n, d)).log_softmax(-1).view(b, n, -1)
        top = logp.detach().argmax(-1)
        if self.label is not None:
            if self.label >= logp.shape[-1]:
                raise ValueError(f"label must lie in [0, {logp.shape[-1]}), got {self.label}")
            return logp[..., self.label], top == self.label
        ends = top[:, [0, -1]]  # (B, 2)
        picked = logp.gather(2, ends[:, None, :].expand(-1, n, -1))  # (B, n, 2)
        same = (ends[:, 0] == ends[:, 1])[:, None]
        hit = (top[..., None] == ends[:, None, :]).any(-1)
        return torch.where(same, picked[..., 0], picked.logsumexp(-1)), hit

    def __call__(self, context: PathContext) -> torch.Tensor:
        b, n, _ = context.z.shape
        if n <= 2:
            return context.z.new_zeros(b)
        return self.weight * -self.log_p(context.z)[0][:, 1:-1].sum(1)

    def modules(self) -> list[nn.Module]:
        return [self.classifier]

    def config(self) -> dict[str, Any]:
        return {"term": "class_likelihood", "weight": self.weight, "label": self.label}


@register_method("class")
class ClassPath(Method):
    """``ClassPath(aae, classifier, label=None, weight=10.0, t=None, smoothness="latent",
    config=None, **fields)``: minimise smoothness + ClassLikelihood over the interior of the SLERP
    path; ``t`` reads a noise-conditional classifier at that noise level; ``fields`` override
    those of :class:`~latentnav.navigation.optimizer.OptimizerConfig`. ``aae`` may be None
    (latent smoothness only; the latent dim is then not checked)."""

    def __init__(
        self,
        aae: nn.Module | None,
        classifier: nn.Module | None = None,
        label: int | None = None,
        weight: float = 10.0,
        t: float | None = None,
        smoothness: str = "latent",
        config: OptimizerConfig | None = None,
        **fields: Any,
    ):
        super().__init__(aae)
        if classifier is None:
            raise ValueError(
                "the 'class' method needs a latent classifier: classifier= (z → logits, e.g. "
                "fit_latent_classifier) or a noisy one (DLSM / CE-only) with t="
            )
        if smoothness not in SMOOTHNESS:
            raise ValueError(f"smoothness must be one of {tuple(SMOOTHNESS)}, got {smoothness!r}")
        if smoothness == "decoded" and getattr(aae, "decoder", None) is None:
            raise ValueError("smoothness='decoded' needs the AAE's decoder")
        self.classifier = classifier if t is None else AtNoiseLevel(classifier, t)
        self.settings = replace(config or OptimizerConfig(), **fields)
        self.term = ClassLikelihood(self.classifier, weight, label)
        self.energy = Energy(SMOOTHNESS[smoothness](), self.term)
        self.t, self.smoothness = t, smoothness

    @property
    def model(self) -> nn.Module:
        return self.classifier

    def config(self) -> dict[str, Any]:
        return {**asdict(self.settings), "energy": self.energy.config(), "t": self.t}

    def _path(self, z_a, z_b, callback):
        decoder = getattr(self.aae, "decoder", None)
        modules = [m for m in (decoder, self.classifier) if m is not None]
        with frozen(*modules):
            start = interpolate(z_a, z_b, self.settings.steps, "slerp")
            start[:, 0], start[:, -1] = z_a, z_b
            z, energy, iterations = optimize(self.energy, decoder, start, self.settings, callback)
            with torch.no_grad():
                log_p, in_class = self.term.log_p(z)
        records = {"energy": energy, "iterations": iterations, "log_p": log_p, "in_class": in_class}
        return LatentPath(z, records, self.name, self.config())
