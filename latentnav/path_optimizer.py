"""The path optimiser's first interface (DESIGN.md §3), kept for existing callers: one config
holding the loop's settings and the energy's weights, a positional compass.

New code uses :mod:`latentnav.navigation`: ``PathOptimizer(aae, energy=label_free(aae, compass))``
with the energy terms of :mod:`latentnav.navigation.energy` (their equations are there).
:func:`energy_from_config` is the bridge: the :class:`~latentnav.navigation.energy.Energy` of a
:class:`PathOptimizerConfig`, terms in the order Smoothness, MaxJump, Density, Cycle,
EndpointClasses, each only when its weight is > 0.

Shapes: z_a, z_b (B, d); paths (B, T + 1, d); energies (B,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from latentnav.interpolation import interpolate
from latentnav.navigation.energy import (
    Cycle,
    Density,
    EndpointClasses,
    Energy,
    MaxJump,
    PathContext,
    Smoothness,
    cycle_error,
    log_q,
)
from latentnav.navigation.methods import check_pair
from latentnav.navigation.optimizer import OptimizerConfig, PathOptimizer
from latentnav.navigation.path import LatentPath
from latentnav.navigation.thresholds import cycle_threshold, log_q_threshold

__all__ = [
    "PathOptimizerConfig",
    "optimize_paths",
    "path_energy",
    "energy_from_config",
    "log_q",
    "log_q_threshold",
    "cycle_error",
    "cycle_threshold",
]


@dataclass(frozen=True)
class PathOptimizerConfig:
    """Settings of :func:`optimize_paths` (energy in the module docstring).

    steps: T, number of segments (T + 1 points, T − 1 of them optimised).
    density_weight: λ ≥ 0, weight of the density term.
    iterations: Adam iterations at most (0 returns the initial path).
    lr: Adam learning rate (latent units).
    tol: a pair stops once |ΔE| / |E| < tol between two iterations.
    eps: band half-width for the ``accepted`` record, |D − 0.5| < eps (reporting only).
    log_q_threshold: τ of the hinge; None gives the plain −log q term of the first version.
    hinge_width: s ≥ 0, softplus smoothing of the hinge (0: hard hinge, zero gradient above τ).
    jump_weight: μ ≥ 0, weight of the soft max-jump term.
    jump_power: p ≥ 2 of the L^p norm over the steps in that term.
    lr_decay: the learning rate follows a cosine from lr down to lr · lr_decay (1: constant).
    cycle_weight: γ ≥ 0, weight of the autoencoder-cycle term (needs the encoder).
    cycle_threshold: κ ≥ 0, squared latent cycle error tolerated without cost.
    class_weight: ν ≥ 0, weight of the class term (needs a latent classifier).
    """

    steps: int = 32
    density_weight: float = 0.05
    iterations: int = 100
    lr: float = 0.05
    tol: float = 1e-4
    eps: float = 0.1
    log_q_threshold: float | None = None
    hinge_width: float = 1.0
    jump_weight: float = 0.0
    jump_power: float = 8.0
    lr_decay: float = 1.0
    cycle_weight: float = 0.0
    cycle_threshold: float = 0.0
    class_weight: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 2):
            raise ValueError(f"steps must be an int ≥ 2, got {self.steps!r}")
        for name in ("lr", "tol", "eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "density_weight",
            "iterations",
            "hinge_width",
            "jump_weight",
            "cycle_weight",
            "cycle_threshold",
            "class_weight",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not self.jump_power >= 2:
            raise ValueError(f"jump_power must be ≥ 2, got {self.jump_power}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.log_q_threshold is not None and not math.isfinite(self.log_q_threshold):
            raise ValueError(f"log_q_threshold must be finite, got {self.log_q_threshold}")


def energy_from_config(
    config: PathOptimizerConfig,
    compass: nn.Module,
    prior: nn.Module,
    encoder: nn.Module | None = None,
    classifier: nn.Module | None = None,
) -> Energy:
    """The :class:`Energy` of ``config``'s weights (a term only when its weight is > 0)."""
    c = config
    terms: list = [Smoothness()]
    if c.jump_weight > 0:
        terms.append(MaxJump(c.jump_weight, c.jump_power))
    if c.density_weight > 0:
        terms.append(Density(compass, prior, c.density_weight, c.log_q_threshold, c.hinge_width))
    if c.cycle_weight > 0:
        if encoder is None:
            raise ValueError("cycle_weight > 0 needs the encoder")
        terms.append(Cycle(encoder, c.cycle_weight, c.cycle_threshold))
    if c.class_weight > 0:
        if classifier is None:
            raise ValueError("class_weight > 0 needs a latent classifier")
        terms.append(EndpointClasses(classifier, c.class_weight))
    return Energy(*terms)


def path_energy(
    decoder: nn.Module,
    compass: nn.Module,
    prior: nn.Module,
    z: torch.Tensor,
    weight: float | PathOptimizerConfig,
    encoder: nn.Module | None = None,
    classifier: nn.Module | None = None,
) -> torch.Tensor:
    """E per pair for full paths z: (B, T + 1, d) → (B,). ``weight``: λ alone (the first
    version's energy, smoothness − λ·Σ log q) or a full :class:`PathOptimizerConfig`;
    ``encoder`` is needed when the config's cycle weight is > 0, ``classifier`` (z (N, d) →
    logits (N, C)) when its class weight is."""
    c = weight if isinstance(weight, PathOptimizerConfig) else None
    if c is None:
        c = PathOptimizerConfig(steps=max(z.shape[1] - 1, 2), density_weight=float(weight))
    energy = energy_from_config(c, compass, prior, encoder, classifier)
    return energy(PathContext(z, decoder))


def optimize_paths(
    aae: nn.Module,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    compass: nn.Module,
    config: PathOptimizerConfig | None = None,
    progress: bool = False,
    init: torch.Tensor | None = None,
    classifier: nn.Module | None = None,
) -> LatentPath:
    """z_a, z_b: (d,) or (B, d) → :class:`LatentPath` (B, T + 1, d) with the records of
    :class:`~latentnav.navigation.optimizer.PathOptimizer` (``energy``, ``iterations``,
    ``d_score``, ``accepted``). ``init`` (B, T + 1, d): the starting path (default SLERP); its
    endpoints are replaced by z_a, z_b. ``classifier``: a latent classifier z (N, d) → logits
    (N, C), needed when ``config.class_weight`` > 0. ``progress``: a progress bar."""
    c = config or PathOptimizerConfig()
    z_a, z_b = check_pair(z_a, z_b, getattr(aae, "latent_dim", None))
    if init is not None:
        expected = (z_a.shape[0], c.steps + 1, z_a.shape[1])
        if not isinstance(init, torch.Tensor) or tuple(init.shape) != expected:
            shape = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
            raise ValueError(f"init must have shape {expected}, got {shape}")
        if not torch.isfinite(init).all():
            raise ValueError("init contains non-finite values")
    encoder = getattr(aae, "encoder", None) if c.cycle_weight > 0 else None
    if c.cycle_weight > 0 and encoder is None:
        raise ValueError("cycle_weight > 0 needs an AAE with an encoder")
    if c.class_weight > 0 and classifier is None:
        raise ValueError(
            "class_weight > 0 needs a classifier: latent_classifier.fit_latent_classifier"
        )
    energy = energy_from_config(c, compass, aae.prior, encoder, classifier)
    settings = OptimizerConfig(
        steps=c.steps, iterations=c.iterations, lr=c.lr, tol=c.tol, lr_decay=c.lr_decay, eps=c.eps
    )
    method = PathOptimizer(aae, energy, compass, config=settings)
    callback = _progress_bar(c.iterations) if progress else None
    start = interpolate(z_a, z_b, c.steps, "slerp") if init is None else init
    return method.from_start(start, z_a, z_b, callback)


def _progress_bar(total: int):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="optimising paths", leave=False)
    return lambda info: bar.update(1)
