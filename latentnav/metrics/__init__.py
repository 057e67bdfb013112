"""Yardsticks shared by every claim of latentnav (DESIGN.md §7)."""

from latentnav.metrics.manifold import (
    LineManifold,
    ManifoldReport,
    acai_smoothness,
    arc_steps,
    monotone,
    wrap_angle,
)
from latentnav.metrics.mmd import mmd2
from latentnav.metrics.neighbours import knn_distances, nearest_distance, squared_distances
from latentnav.metrics.ood import DETECTORS, OODConfig, OODDetector, ood_detector
from latentnav.metrics.paths import (
    PathReport,
    band_fraction,
    class_changes,
    class_confidence,
    endpoint_error,
    frame_steps,
    latent_length,
    length_ratio,
    ood_frame_flags,
    perceptual_path_length,
    reconstruction_floor,
    region_shares,
    slerp_length,
    smoothness,
)
from latentnav.metrics.reference import (
    ReferenceClassifier,
    ReferenceConfig,
    cache_root,
    data_fingerprint,
    reference_classifier,
)
from latentnav.metrics.samples import (
    PRDC,
    FeatureExtractor,
    ParzenResult,
    classifier_accuracy,
    fid,
    inception_score,
    parzen_evaluate,
    parzen_log_likelihood,
    precision_recall,
    psnr,
    ssim,
)

__all__ = [
    "mmd2",
    # reference features
    "ReferenceClassifier",
    "ReferenceConfig",
    "cache_root",
    "data_fingerprint",
    "reference_classifier",
    # neighbours
    "knn_distances",
    "nearest_distance",
    "squared_distances",
    # sample metrics
    "FeatureExtractor",
    "PRDC",
    "ParzenResult",
    "classifier_accuracy",
    "fid",
    "inception_score",
    "parzen_evaluate",
    "parzen_log_likelihood",
    "precision_recall",
    "psnr",
    "ssim",
    # OOD detectors
    "DETECTORS",
    "OODConfig",
    "OODDetector",
    "ood_detector",
    # path metrics
    "PathReport",
    "band_fraction",
    "class_changes",
    "class_confidence",
    "endpoint_error",
    "frame_steps",
    "latent_length",
    "length_ratio",
    "ood_frame_flags",
    "perceptual_path_length",
    "reconstruction_floor",
    "region_shares",
    "slerp_length",
    "smoothness",
    # exact manifold (lines data)
    "LineManifold",
    "ManifoldReport",
    "acai_smoothness",
    "arc_steps",
    "monotone",
    "wrap_angle",
]
