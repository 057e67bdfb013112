"""Energy terms of the path optimiser as composable objects (DESIGN.md §3; RESULTS §6.5, §6.8).

For one pair, frames x_k = G(z_k), steps Δ_k = ‖x_{k+1} − x_k‖ (k = 0..T−1), log q = log p − ℓ:

    Smoothness()                T · Σ_k Δ_k²                                   (decoded-path energy)
    MaxJump(μ, p)               μ · T² · (Σ_k Δ_k^p)^{2/p}                     (largest jump)
    JumpCap(ρ, c)               ρ · T · Σ_k max(Δ_k² − c² Δ̂², 0)               (jump cap)
    Density(ℓ, prior, λ, τ, s)  λ · Σ_{k=1}^{T−1} h(log q(z_k))                (density)
    Cycle(E, γ, κ)              γ · Σ_{k=1}^{T−1} max(‖E(G(z_k)) − z_k‖² − κ, 0)  (cycle)
    EndpointClasses(p(y|z), ν)  ν · Σ_{k=1}^{T−1} −log(p(ŷ_0 | z_k) + p(ŷ_T | z_k))  (classes)
    Ink(n₀, w)                  w · Σ_{k=1}^{T−1} max(log n − log ‖x_k‖, 0)     (ink, ink.py)

    Δ̂ = the largest step of the reference path (the optimiser's start, SLERP by default), so the
    cap is in each pair's own units: no step longer than c times the straight path's longest.
    h(u) = −u without a threshold τ; s · softplus((τ − u) / s) with one (s = 0: max(τ − u, 0)).

Every term is ``term(context) -> (B,)``; the :class:`PathContext` decodes the path once and shares
the frames and steps. A user-defined term is any callable with that signature. ``Energy(*terms)``
is their sum. The named presets :func:`label_free` and :func:`with_classes` hold the settings the
README and RESULTS cite (§6.5 and §6.8, MNIST d = 8); thresholds there: none for log q (τ = None,
the plain −log q) and κ = 0; :mod:`latentnav.navigation.thresholds` derives τ, κ from data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from latentnav.interpolation import interpolate
from latentnav.navigation.ink import Ink, ink_floor, stored_latents

__all__ = [
    "PathContext",
    "Smoothness",
    "MaxJump",
    "JumpCap",
    "Density",
    "Cycle",
    "EndpointClasses",
    "Ink",
    "Energy",
    "log_q",
    "cycle_error",
    "label_free",
    "with_classes",
    "default_energy",
    "LABEL_FREE",
    "WITH_CLASSES",
]

Term = Callable[["PathContext"], torch.Tensor]


class PathContext:
    """z: (B, T + 1, d) and what the terms share, computed once on first use: ``images``
    (B·(T + 1), *image_shape) = G(z), ``squared_steps`` (B, T) = Δ_k². ``reference``: the
    context of a fixed path between the same endpoints (the optimiser passes its start, one
    object for every iteration, so what a term reads of it is computed once); with one, the
    endpoints' frames are its own (fixed: no gradient) and only the interior is decoded."""

    def __init__(self, z: torch.Tensor, decoder: nn.Module, reference: PathContext | None = None):
        self.z, self.decoder, self.reference = z, decoder, reference

    @property
    def steps(self) -> int:
        return self.z.shape[1] - 1

    @cached_property
    def images(self) -> torch.Tensor:
        b, n, d = self.z.shape
        ref = self.reference
        if ref is None or n <= 2 or ref.z.shape[0] != b:
            return self.decoder(self.z.reshape(b * n, d))
        ends = ref.images.detach().view(b, ref.z.shape[1], *ref.images.shape[1:])  # once
        inner = self.decoder(self.z[:, 1:-1].reshape(b * (n - 2), d))
        inner = inner.view(b, n - 2, *inner.shape[1:])
        return torch.cat([ends[:, :1], inner, ends[:, -1:]], 1).flatten(0, 1)

    @cached_property
    def squared_steps(self) -> torch.Tensor:
        b, n = self.z.shape[:2]
        return self.images.reshape(b, n, -1).diff(dim=1).square().sum(2)

    def subset(self, index: torch.Tensor) -> PathContext:
        """The context of pairs ``index`` (K,) int64, with what is already computed sliced, not
        recomputed (the reference too)."""
        reference = None if self.reference is None else self.reference.subset(index)
        out = PathContext(self.z[index], self.decoder, reference)
        b, n = self.z.shape[:2]
        if "images" in self.__dict__:
            images = self.__dict__["images"]
            out.__dict__["images"] = images.view(b, n, *images.shape[1:])[index].flatten(0, 1)
        if "squared_steps" in self.__dict__:
            out.__dict__["squared_steps"] = self.__dict__["squared_steps"][index]
        return out

    def inner_images(self) -> torch.Tensor:
        """Frames of the interior points, (B·(T − 1), *image_shape)."""
        b, n = self.z.shape[:2]
        return self.images.view(b, n, *self.images.shape[1:])[:, 1:-1].flatten(0, 1)


def log_q(compass: nn.Module, prior: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """log q(z) = log p(z) − ℓ(z), exact for a calibrated compass ℓ: z (N, d) → (N,)."""
    return prior.log_prob(z) - compass(z)


def cycle_error(encoder: nn.Module, z: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """‖E(x) − z‖² for frames x = G(z): z (N, d), frames (N, *image_shape) → (N,)."""
    return (encoder(frames) - z).square().sum(-1)


class Smoothness:
    """T · Σ_k Δ_k² → (B,)."""

    def __call__(self, context: PathContext) -> torch.Tensor:
        return context.steps * context.squared_steps.sum(1)

    def config(self) -> dict[str, Any]:
        return {"term": "smoothness"}


class MaxJump:
    """μ · T² · (Σ_k Δ_k^p)^{2/p} → (B,), computed relative to the largest step for range."""

    def __init__(self, weight: float, power: float = 16.0):
        if not weight >= 0:
            raise ValueError(f"weight (μ) must be ≥ 0, got {weight}")
        if not power >= 2:
            raise ValueError(f"power (p) must be ≥ 2, got {power}")
        self.weight, self.power = weight, power

    def __call__(self, context: PathContext) -> torch.Tensor:
        squared = context.squared_steps
        top = squared.detach().amax(1, keepdim=True).clamp_min(1e-12)
        # The largest term is 1, so the sum is ≥ 1 unless every step is 0 (then its gradient is
        # 0 and the clamp keeps x^{2/p} away from its infinite slope at 0).
        p = self.power
        jump = (squared / top).pow(p / 2).sum(1).clamp_min(1).pow(2 / p) * top[:, 0]
        return self.weight * context.steps**2 * jump

    def config(self) -> dict[str, Any]:
        return {"term": "max_jump", "weight": self.weight, "power": self.power}


class JumpCap:
    """ρ · T · Σ_k max(Δ_k² − c² Δ̂², 0) → (B,), Δ̂ the reference path's largest step (SLERP
    between the endpoints when the context has no reference). Zero while every step is within
    c times the reference's longest; beyond, each unit of squared excess costs ρ times what it
    costs in :class:`Smoothness`."""

    def __init__(self, weight: float, ratio: float = 1.0):
        if not weight >= 0:
            raise ValueError(f"weight (ρ) must be ≥ 0, got {weight}")
        if not ratio > 0:
            raise ValueError(f"ratio (c) must be > 0, got {ratio}")
        self.weight, self.ratio = weight, ratio

    def __call__(self, context: PathContext) -> torch.Tensor:
        with torch.no_grad():
            reference = context.reference
            if reference is None:
                z = context.z
                straight = interpolate(z[:, 0], z[:, -1], context.steps, "slerp")
                reference = context.reference = PathContext(straight, context.decoder)
            cap = (self.ratio**2) * reference.squared_steps.amax(1, keepdim=True)
        excess = (context.squared_steps - cap).clamp_min(0)
        return self.weight * context.steps * excess.sum(1)

    def config(self) -> dict[str, Any]:
        return {"term": "jump_cap", "weight": self.weight, "ratio": self.ratio}


class Density:
    """λ · Σ_{k=1}^{T−1} h(log q(z_k)) → (B,); ``compass`` is the logit module ℓ."""

    def __init__(
        self,
        compass: nn.Module,
        prior: nn.Module,
        weight: float,
        threshold: float | None = None,
        width: float = 1.0,
    ):
        if not weight >= 0:
            raise ValueError(f"weight (λ) must be ≥ 0, got {weight}")
        if not width >= 0:
            raise ValueError(f"width (s) must be ≥ 0, got {width}")
        if threshold is not None and not torch.isfinite(torch.tensor(float(threshold))):
            raise ValueError(f"threshold (τ) must be finite or None, got {threshold}")
        self.compass, self.prior = compass, prior
        self.weight, self.threshold, self.width = weight, threshold, width

    def __call__(self, context: PathContext) -> torch.Tensor:
        return self.weight * self._points(context).sum(1)

    def per_point(self, context: PathContext) -> torch.Tensor:
        """λ · h(log q(z_k)) for each interior point → (B, T − 1)."""
        return self.weight * self._points(context)

    def _points(self, context: PathContext) -> torch.Tensor:
        b, n, d = context.z.shape
        if n <= 2:
            return context.z.new_zeros(b, 0)
        lq = log_q(self.compass, self.prior, context.z[:, 1:-1].reshape(-1, d)).reshape(b, n - 2)
        if self.threshold is None:
            term = -lq
        elif self.width == 0:
            term = (self.threshold - lq).clamp_min(0)
        else:
            term = self.width * F.softplus((self.threshold - lq) / self.width)
        return term

    def modules(self) -> list[nn.Module]:
        return [self.compass]

    def config(self) -> dict[str, Any]:
        return {"term": "density", "weight": self.weight, "threshold": self.threshold,
                "width": self.width}  # fmt: skip


class Cycle:
    """γ · Σ_{k=1}^{T−1} max(‖E(G(z_k)) − z_k‖² − κ, 0) → (B,)."""

    def __init__(self, encoder: nn.Module, weight: float, threshold: float = 0.0):
        if encoder is None:
            raise ValueError("the cycle term needs the AAE's encoder")
        if not (weight >= 0 and threshold >= 0):
            raise ValueError(f"weight (γ) and threshold (κ) must be ≥ 0, got {weight}, {threshold}")
        self.encoder, self.weight, self.threshold = encoder, weight, threshold

    def __call__(self, context: PathContext) -> torch.Tensor:
        return self.weight * self._points(context).sum(1)

    def per_point(self, context: PathContext) -> torch.Tensor:
        """γ · max(‖E(G(z_k)) − z_k‖² − κ, 0) for each interior point → (B, T − 1)."""
        return self.weight * self._points(context)

    def _points(self, context: PathContext) -> torch.Tensor:
        b, n, d = context.z.shape
        if n <= 2:
            return context.z.new_zeros(b, 0)
        inner = context.z[:, 1:-1].reshape(-1, d)
        error = cycle_error(self.encoder, inner, context.inner_images()).view(b, n - 2)
        return (error - self.threshold).clamp_min(0)

    def modules(self) -> list[nn.Module]:
        return [self.encoder]

    def config(self) -> dict[str, Any]:
        return {"term": "cycle", "weight": self.weight, "threshold": self.threshold}


class EndpointClasses:
    """ν · Σ_{k=1}^{T−1} −log(p(ŷ_0 | z_k) + p(ŷ_T | z_k)) → (B,), ŷ the classifier's argmax at
    the endpoints (one term when they agree); ``classifier``: z (N, d) → logits (N, C)."""

    def __init__(self, classifier: nn.Module, weight: float):
        if classifier is None:
            raise ValueError("the class term needs a classifier: fit_latent_classifier")
        if not weight >= 0:
            raise ValueError(f"weight (ν) must be ≥ 0, got {weight}")
        self.classifier, self.weight = classifier, weight

    def __call__(self, context: PathContext) -> torch.Tensor:
        return self.weight * self._points(context).sum(1)

    def per_point(self, context: PathContext) -> torch.Tensor:
        """ν · −log(p(ŷ_0 | z_k) + p(ŷ_T | z_k)) for each interior point → (B, T − 1)."""
        return self.weight * self._points(context)

    def _points(self, context: PathContext) -> torch.Tensor:
        b, n, d = context.z.shape
        if n <= 2:
            return context.z.new_zeros(b, 0)
        logp = self.classifier(context.z.reshape(b * n, d)).log_softmax(-1).view(b, n, -1)
        ends = logp[:, [0, -1]].detach().argmax(-1)  # (B, 2)
        picked = logp[:, 1:-1].gather(2, ends[:, None, :].expand(-1, n - 2, -1))  # (B, T − 1, 2)
        same = (ends[:, 0] == ends[:, 1])[:, None]
        return -torch.where(same, picked[..., 0], picked.logsumexp(-1))

    def modules(self) -> list[nn.Module]:
        return [self.classifier]

    def config(self) -> dict[str, Any]:
        return {"term": "endpoint_classes", "weight": self.weight}


class Energy:
    """E = Σ terms, summed in the given order: ``energy(context) -> (B,)``."""

    def __init__(self, *terms: Term):
        if not terms:
            raise ValueError("Energy needs at least one term")
        for term in terms:
            if not callable(term):
                raise TypeError(f"every term must be callable(context) -> (B,), got {term!r}")
        self.terms = terms

    def __call__(self, context: PathContext) -> torch.Tensor:
        total = self.terms[0](context)
        for term in self.terms[1:]:
            total = total + term(context)
        return total

    def per_point(self, context: PathContext) -> torch.Tensor:
        """The sum of the terms that are sums over interior points (those with ``per_point``:
        Density, Cycle, EndpointClasses), point by point → (B, T − 1)."""
        b, n = context.z.shape[:2]
        total = context.z.new_zeros(b, max(n - 2, 0))
        for term in self.terms:
            if hasattr(term, "per_point"):
                total = total + term.per_point(context)
        return total

    def with_point_scale(self, factor: float) -> Energy:
        """The same terms with those that sum over interior points (``per_point``) × ``factor``:
        the energy of a path of T₀ steps standing in for one of T = factor · T₀ (the same
        integral over the path, DESIGN.md §3)."""
        return Energy(*(_ScaledPoints(t, factor) if hasattr(t, "per_point") else t
                        for t in self.terms))  # fmt: skip

    def modules(self) -> list[nn.Module]:
        """Every module a term evaluates (frozen by the optimiser while it runs)."""
        found: list[nn.Module] = []
        for term in self.terms:
            if hasattr(term, "modules") and not isinstance(term, nn.Module):
                found += term.modules()
            elif isinstance(term, nn.Module):
                found.append(term)
        return found

    def config(self) -> list[dict[str, Any]]:
        return [
            t.config() if hasattr(t, "config") else {"term": getattr(t, "__name__", repr(t))}
            for t in self.terms
        ]


class _ScaledPoints:
    """A point term × factor (:meth:`Energy.with_point_scale`)."""

    def __init__(self, term: Term, factor: float):
        self.term, self.factor = term, float(factor)

    def __call__(self, context: PathContext) -> torch.Tensor:
        return self.factor * self.term(context)

    def per_point(self, context: PathContext) -> torch.Tensor:
        return self.factor * self.term.per_point(context)

    def modules(self) -> list[nn.Module]:
        return Energy(self.term).modules()  # the one rule for what a term evaluates

    def config(self) -> dict[str, Any]:
        return {**Energy(self.term).config()[0], "point_scale": self.factor}


# -- named presets (RESULTS §6.5 label-free choice; §6.8 with labels, d = 8 dev choice) ----------
LABEL_FREE = {"density_weight": 30.0, "jump_weight": 0.3, "jump_power": 16.0,
              "cycle_weight": 300.0, "log_q_threshold": None, "hinge_width": 1.0,
              "cycle_threshold": 0.0, "cap_weight": 0.0, "cap_ratio": 1.0,
              "ink_weight": 0.0, "ink_floor": None, "ink_endpoints": True}  # fmt: skip
DEFAULT_INK = 300.0  # the default energy's ink weight w (RESULTS §6.22, dev pairs)
WITH_CLASSES = {**LABEL_FREE, "density_weight": 60.0, "jump_weight": 0.5, "class_weight": 100.0}


def _settings(preset: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(preset)
    if unknown:
        raise ValueError(f"unknown preset setting(s) {sorted(unknown)}; known: {sorted(preset)}")
    return {**preset, **overrides}


def label_free(aae: nn.Module, compass: nn.Module, **overrides: Any) -> Energy:
    """Smoothness + MaxJump(0.3, 16) + Density(λ = 30, no τ) + Cycle(γ = 300, κ = 0): the label-free
    energy of RESULTS §6.5 (MNIST d = 8); ``overrides`` replace entries of :data:`LABEL_FREE`
    (``ink_weight`` w > 0 adds Ink(n₀, w, ``ink_endpoints``), n₀ = ``ink_floor`` or, when None,
    that of the AAE's stored latents, :func:`~latentnav.navigation.ink.ink_floor`)."""
    s = _settings(LABEL_FREE, overrides)
    cap = (JumpCap(s["cap_weight"], s["cap_ratio"]),) if s["cap_weight"] > 0 else ()
    ink = ()
    if s["ink_weight"] > 0:
        floor = s["ink_floor"] if s["ink_floor"] is not None else ink_floor(aae)
        ink = (Ink(floor, s["ink_weight"], s["ink_endpoints"]),)
    return Energy(
        Smoothness(),
        MaxJump(s["jump_weight"], s["jump_power"]),
        *cap,
        Density(compass, aae.prior, s["density_weight"], s["log_q_threshold"], s["hinge_width"]),
        Cycle(aae.encoder, s["cycle_weight"], s["cycle_threshold"]),
        *ink,
    )


def with_classes(
    aae: nn.Module, compass: nn.Module, classifier: nn.Module, **overrides: Any
) -> Energy:
    """:func:`label_free` with λ = 60, μ = 0.5 and EndpointClasses(ν = 100): RESULTS §6.8's choice
    at d = 8 (μ = 1.5 was the d = 16 retune); ``overrides`` replace entries of
    :data:`WITH_CLASSES`."""
    s = _settings(WITH_CLASSES, overrides)
    terms = label_free(aae, compass, **{k: v for k, v in s.items() if k in LABEL_FREE}).terms
    return Energy(*terms, EndpointClasses(classifier, s["class_weight"]))


def default_energy(
    aae: nn.Module, compass: nn.Module, images: torch.Tensor | None = None, **overrides: Any
) -> Energy:
    """The path optimiser's default: :func:`with_classes` on ``aae.cluster_classifier`` (label-free
    classes, :func:`~latentnav.navigation.clusters.attach_cluster_classifier`) when the AAE stores
    one, else :func:`label_free` (RESULTS §6.14); with the ink term (w = :data:`DEFAULT_INK`,
    RESULTS §6.22) when it stores latents of its training images, or given training ``images``
    (N, *image_shape), its floor from them where it stores none. ``overrides`` go to the
    preset, so ``class_weight`` needs the stored classifier and weights are relative to that
    preset's."""
    stored = stored_latents(aae) is not None
    if stored or images is not None:
        floor = {} if stored else {"ink_floor": ink_floor(aae, images)}
        overrides = {"ink_weight": DEFAULT_INK, **floor, **overrides}
    classifier = getattr(aae, "cluster_classifier", None)
    if classifier is None:
        return label_free(aae, compass, **overrides)
    return with_classes(aae, compass, classifier, **overrides)
