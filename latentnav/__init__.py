"""latentnav: navigate generative latent spaces without falling into their holes.

The names a notebook needs, importable from the top level (loaded on first use, so that
``import latentnav`` stays cheap)::

    from latentnav import AAE, Navigator, LatentDiffusion, load_bundle, export_video, PathReport

    aae = AAE.load("latentnav-demo/aae.safetensors")         # z = aae.encode(x): (B, d)
    path = Navigator(aae).path(z_a, z_b)                      # LatentPath, z: (B, T + 1, d)
    export_video(path.decode(aae), "path.mp4")                # frames (B, T + 1, C, H, W)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    # models and their training
    "AAE": "latentnav.aae",
    "AAEConfig": "latentnav.aae",
    "TrainConfig": "latentnav.training",
    "fit_aae": "latentnav.training",
    "fit_diffusion": "latentnav.training",
    "LatentDiffusion": "latentnav.diffusion",
    "DiffusionConfig": "latentnav.diffusion",
    "load_bundle": "latentnav.joint",
    "save_bundle": "latentnav.joint",
    "fit_compass": "latentnav.compass",
    "load_compass": "latentnav.compass",
    "fit_latent_classifier": "latentnav.latent_classifier",
    # navigation
    "Navigator": "latentnav.navigation",
    "LatentPath": "latentnav.navigation",
    "METHODS": "latentnav.navigation",
    "make_method": "latentnav.navigation",
    "label_free": "latentnav.navigation",
    "with_classes": "latentnav.navigation",
    "slerp": "latentnav.interpolation",
    "lerp": "latentnav.interpolation",
    # sampling
    "SAMPLERS": "latentnav.sampling",
    "SampleResult": "latentnav.sampling",
    "sample": "latentnav.prior_sampling",
    "time_grid": "latentnav.sampling",
    # evaluation and output
    "PathReport": "latentnav.metrics",
    "reference_classifier": "latentnav.metrics",
    "export_video": "latentnav.video",
    "TrajectoryRecorder": "latentnav.video",
    # data
    "load_mnist": "latentnav.data",
    "load_embedded_mnist": "latentnav.data",
}

__all__ = [
    "AAE",
    "AAEConfig",
    "DiffusionConfig",
    "LatentDiffusion",
    "LatentPath",
    "METHODS",
    "Navigator",
    "PathReport",
    "SAMPLERS",
    "SampleResult",
    "TrainConfig",
    "TrajectoryRecorder",
    "export_video",
    "fit_aae",
    "fit_compass",
    "fit_diffusion",
    "fit_latent_classifier",
    "label_free",
    "lerp",
    "load_bundle",
    "load_compass",
    "load_embedded_mnist",
    "load_mnist",
    "make_method",
    "reference_classifier",
    "sample",
    "save_bundle",
    "slerp",
    "time_grid",
    "with_classes",
]  # the keys of _EXPORTS (a test checks)

if TYPE_CHECKING:  # what static checkers and IDEs see
    from latentnav.aae import AAE, AAEConfig
    from latentnav.compass import fit_compass, load_compass
    from latentnav.data import load_embedded_mnist, load_mnist
    from latentnav.diffusion import DiffusionConfig, LatentDiffusion
    from latentnav.interpolation import lerp, slerp
    from latentnav.joint import load_bundle, save_bundle
    from latentnav.latent_classifier import fit_latent_classifier
    from latentnav.metrics import PathReport, reference_classifier
    from latentnav.navigation import (
        METHODS,
        LatentPath,
        Navigator,
        label_free,
        make_method,
        with_classes,
    )
    from latentnav.prior_sampling import sample
    from latentnav.sampling import SAMPLERS, SampleResult, time_grid
    from latentnav.training import TrainConfig, fit_aae, fit_diffusion
    from latentnav.video import TrajectoryRecorder, export_video


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'latentnav' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
