"""Navigation between latents (DESIGN.md §3): one interface for every method.

``Navigator(aae).path(z_a, z_b)`` runs the path optimiser (RESULTS §6.5) with the compass and
the label-free classes attached to the AAE, coarse to fine with its points kept at equal decoded
arc length (§6.17), its frames re-chosen under a jump cap (§6.15), after the stored data graph's
geodesic where it resolves the frames (RESULTS §6.13); ``Navigator(aae, "stepwise",
compass=...)`` or any name in ``METHODS`` picks another method, ``options`` go to it. Every
method answers
``path(z_a, z_b, *, callback=None) -> LatentPath``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from latentnav.navigation import conditional as _conditional  # noqa: F401 (registers "class")
from latentnav.navigation import diffusion_methods as _diffusion_methods  # noqa: F401 (score, sde)
from latentnav.navigation import graph as _graph  # noqa: F401  (registers "graph")
from latentnav.navigation import ode as _ode  # noqa: F401  (registers "ode")
from latentnav.navigation.auto import DataFirst
from latentnav.navigation.clusters import attach_cluster_classifier, cluster_classifier
from latentnav.navigation.compasses import DensityCompass, DiscriminatorCompass
from latentnav.navigation.energy import (
    Cycle,
    Density,
    EndpointClasses,
    Energy,
    Ink,
    JumpCap,
    MaxJump,
    PathContext,
    Smoothness,
    default_energy,
    label_free,
    with_classes,
)
from latentnav.navigation.frames import (
    CappedFrames,
    FastCappedFrames,
    capped_optimizer,
    choice_costs,
    select_frames,
)
from latentnav.navigation.graph import attach_data_graph, has_data_graph
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
    "DataFirst",
    "attach_data_graph",
    "cluster_classifier",
    "CappedFrames",
    "FastCappedFrames",
    "choice_costs",
    "select_frames",
    "attach_cluster_classifier",
    "StepwiseConfig",
    "PathOptimizer",
    "OptimizerConfig",
    "Energy",
    "PathContext",
    "Smoothness",
    "JumpCap",
    "MaxJump",
    "Density",
    "Ink",
    "Cycle",
    "EndpointClasses",
    "label_free",
    "with_classes",
    "default_energy",
]

_MISSING_COMPASS = (
    "Navigator(aae) runs the label-free path optimiser, which needs a calibrated compass and this "
    "AAE has none: pass training images (`Navigator(aae, data=images)` fits one and attaches it "
    "to the AAE), fit one with `compass, report = latentnav.compass.fit_compass(aae, images)` "
    "and set `aae.compass = compass`, or pass `compass=`"
)


def _fit_missing_compass(aae: nn.Module, data: torch.Tensor, config) -> dict[str, Any]:
    """Fit the compass an AAE without one needs (DESIGN.md §3) on ``data: (N, *image_shape)``
    (the last tenth held out for calibration) and attach it as ``aae.compass``."""
    from latentnav.compass import fit_compass

    if not isinstance(data, torch.Tensor) or data.shape[1:] != tuple(aae.image_shape):
        shape = getattr(data, "shape", type(data).__name__)
        raise ValueError(f"data must be images (N, {tuple(aae.image_shape)}), got {shape}")
    if len(data) < 20:
        raise ValueError(f"data needs at least 20 images to fit a compass, got {len(data)}")
    n_val = max(len(data) // 10, 2)
    compass, report = fit_compass(aae, data[:-n_val], data[-n_val:], config)
    aae.compass = compass
    warnings.warn(
        f"Navigator: the AAE had no compass; fitted one on {len(data) - n_val} images (held-out "
        f"accuracy {report['heldout_accuracy']:.3f}) and attached it as aae.compass; save the AAE "
        "to keep it",
        stacklevel=3,
    )
    return report


class Navigator:
    """The front door: ``Navigator(aae, method=None, **options).path(z_a, z_b, *, callback=None)``.
    ``method``: a registered name, a :class:`Method` object (then no options), or None for the
    optimiser's default energy with ``aae.compass`` (or ``compass=``), coarse to fine and
    reparametrised to equal decoded steps (:func:`capped_optimizer`), its frames re-chosen under
    the jump cap (:class:`CappedFrames`); given ``data`` (training images), or an AAE that stores
    their graph (``latentnav train-aae``, :func:`attach_data_graph`), ``"auto"``: per pair the
    geodesic of the graph over them where its chain resolves the T frames, else those capped
    frames (:class:`DataFirst`). An AAE without a compass fits one on first use from ``data``,
    with ``compass_config``, and where it stores no training latents takes the ink term's floor
    from ``data`` (:func:`~latentnav.navigation.ink.ink_floor`)."""

    def __init__(
        self,
        aae: nn.Module,
        method: str | Method | None = None,
        *,
        data: torch.Tensor | None = None,
        compass_config: Any = None,
        **options: Any,
    ):
        self.compass_report: dict[str, Any] | None = None
        if isinstance(method, Method):
            if options:
                raise ValueError(f"options {sorted(options)} need a method name, not an object")
            self.method = method
        elif method is None:
            if options.get("compass") is None and getattr(aae, "compass", None) is None:
                if data is None:
                    raise ValueError(_MISSING_COMPASS)
                self.compass_report = _fit_missing_compass(aae, data, compass_config)
            if data is not None and "energy" not in options:  # the ink floor from the data
                compass = options.get("compass")
                compass = compass if compass is not None else aae.compass
                options["energy"] = default_energy(aae, compass, images=data)
            self.method = capped_optimizer(aae, **options)
            if data is not None or has_data_graph(aae):  # then the data graph first
                steps = self.method.base.settings.steps
                self.method = DataFirst(aae, images=data, steps=steps, fallback=self.method)
        elif isinstance(method, str):
            self.method = make_method(method, aae, **options)
        else:
            raise TypeError(f"method must be a name, a Method or None, got {type(method).__name__}")
        self.aae = aae

    def path(self, z_a, z_b, *, callback=None, chunk_size: int | None = None) -> LatentPath:
        """z_a, z_b: (d,) or (B, d) → :class:`LatentPath` with z (B, T + 1, d), in chunks of at
        most ``chunk_size`` pairs (default the method's, 1024)."""
        return self.method.path(z_a, z_b, callback=callback, chunk_size=chunk_size)

    def between_images(self, x_a, x_b, **kw: Any) -> LatentPath:
        """Encode x_a, x_b: (B, *image_shape) first, then :meth:`path`."""
        return self.method.between_images(x_a, x_b, **kw)
