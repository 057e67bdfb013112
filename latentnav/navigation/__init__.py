"""Navigation between latents (DESIGN.md §3): one interface for every method.

``Navigator(aae).path(z_a, z_b)`` runs the label-free path optimiser (RESULTS §6.5) with the
compass attached to the AAE; ``Navigator(aae, "stepwise", compass=...)`` or any name in
``METHODS`` picks another method, ``options`` go to it. Every method answers
``path(z_a, z_b, *, callback=None) -> LatentPath``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from latentnav.navigation import conditional as _conditional  # noqa: F401 (registers "class")
from latentnav.navigation import diffusion_methods as _diffusion_methods  # noqa: F401 (score, sde)
from latentnav.navigation import ode as _ode  # noqa: F401  (registers "ode")
from latentnav.navigation.compasses import DensityCompass, DiscriminatorCompass
from latentnav.navigation.energy import (
    Cycle,
    Density,
    EndpointClasses,
    Energy,
    MaxJump,
    PathContext,
    Smoothness,
    label_free,
    with_classes,
)
from latentnav.navigation.methods import METHODS, Method, check_pair, make_method, register_method
from latentnav.navigation.optimizer import OptimizerConfig, PathOptimizer
from latentnav.navigation.path import LatentPath
from latentnav.navigation.stepwise import Stepwise, StepwiseConfig

__all__ = [
    "Navigator",
    "LatentPath",
    "METHODS",
    "Method",
    "make_method",
    "register_method",
    "check_pair",
    "DiscriminatorCompass",
    "DensityCompass",
    "Stepwise",
    "StepwiseConfig",
    "PathOptimizer",
    "OptimizerConfig",
    "Energy",
    "PathContext",
    "Smoothness",
    "MaxJump",
    "Density",
    "Cycle",
    "EndpointClasses",
    "label_free",
    "with_classes",
]

_MISSING_COMPASS = (
    "Navigator(aae) runs the label-free path optimiser, which needs a calibrated compass: fit one "
    "with `compass, report = latentnav.compass.fit_compass(aae, images)` and attach it "
    "(`aae.compass = compass`), or pass `compass=`"
)


class Navigator:
    """The front door: ``Navigator(aae, method=None, **options).path(z_a, z_b, *, callback=None)``.
    ``method``: a registered name, a :class:`Method` object (then no options), or None for the
    label-free optimiser preset with ``aae.compass`` (or ``compass=``)."""

    def __init__(self, aae: nn.Module, method: str | Method | None = None, **options: Any):
        if isinstance(method, Method):
            if options:
                raise ValueError(f"options {sorted(options)} need a method name, not an object")
            self.method = method
        elif method is None:
            if options.get("compass") is None and getattr(aae, "compass", None) is None:
                raise ValueError(_MISSING_COMPASS)
            self.method = make_method("optimizer", aae, **options)
        elif isinstance(method, str):
            self.method = make_method(method, aae, **options)
        else:
            raise TypeError(f"method must be a name, a Method or None, got {type(method).__name__}")
        self.aae = aae

    def path(self, z_a, z_b, *, callback=None) -> LatentPath:
        """z_a, z_b: (d,) or (B, d) → :class:`LatentPath` with z (B, T + 1, d)."""
        return self.method.path(z_a, z_b, callback=callback)

    def between_images(self, x_a, x_b, **kw: Any) -> LatentPath:
        """Encode x_a, x_b: (B, *image_shape) first, then :meth:`path`."""
        return self.method.between_images(x_a, x_b, **kw)
