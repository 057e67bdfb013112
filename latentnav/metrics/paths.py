"""Path metrics (DESIGN.md §7): how good is a batch of decoded latent paths?

Shapes: ``frames: (B, T+1, C, H, W)`` decoded path points in [0, 1]; ``latents: (B, T+1, d)``;
``scores: (B, T+1)`` discriminator values D_z ∈ (0, 1); ``probs: (B, T+1, K)``.
Per-path functions return ``(B,)`` tensors; :class:`PathReport` aggregates them over paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from latentnav._checks import check_finite
from latentnav.interpolation import interpolate
from latentnav.metrics.ood import OODDetector
from latentnav.metrics.reference import ReferenceClassifier

__all__ = [
    "frame_steps",
    "smoothness",
    "perceptual_path_length",
    "latent_length",
    "slerp_length",
    "length_ratio",
    "endpoint_error",
    "band_fraction",
    "region_shares",
    "class_confidence",
    "class_changes",
    "ood_frame_flags",
    "reconstruction_floor",
    "PathReport",
]


def _check_paths(x: object, name: str, ndim: int, shape_doc: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_doc}")
    if x.ndim != ndim or x.shape[0] == 0 or x.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape {shape_doc} with B ≥ 1, T ≥ 1, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    check_finite(x, name)
    return x


def frame_steps(frames: torch.Tensor) -> torch.Tensor:
    """L2 distance between consecutive frames ``(B, T)`` over all pixels."""
    frames = _check_paths(frames, "frames", 5, "(B, T+1, C, H, W)")
    return (frames[:, 1:] - frames[:, :-1]).flatten(2).norm(dim=2)


def smoothness(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and max consecutive-frame distance per path, each ``(B,)``."""
    steps = frame_steps(frames)
    return steps.mean(1), steps.amax(1)


def perceptual_path_length(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """PPL-style figure on reference features ``(B, T+1, F)`` (Karras et al. 2019 with ε = 1/T):
    mean over steps of ‖f_{k+1} − f_k‖² / ε², features L2-normalised when ``normalize``."""
    features = _check_paths(features, "features", 3, "(B, T+1, F)")
    if normalize:
        features = torch.nn.functional.normalize(features, dim=-1)
    steps = features.shape[1] - 1
    return (features[:, 1:] - features[:, :-1]).square().sum(-1).mean(1) * steps**2


def latent_length(latents: torch.Tensor) -> torch.Tensor:
    """Polyline length ``(B,)`` of latent paths ``(B, T+1, d)``."""
    latents = _check_paths(latents, "latents", 3, "(B, T+1, d)")
    return (latents[:, 1:] - latents[:, :-1]).norm(dim=-1).sum(1)


def slerp_length(start: torch.Tensor, end: torch.Tensor, segments: int = 512) -> torch.Tensor:
    """Length ``(B,)`` of the library's SLERP curve (:func:`latentnav.interpolation.slerp`,
    norm-interpolating) from ``start`` to ``end`` (both ``(B, d)``), by a ``segments``-piece
    polyline (r·Ω when both norms equal r)."""
    if start.shape != end.shape or start.ndim != 2:
        raise ValueError(f"start and end must both be (B, d), got {start.shape}, {end.shape}")
    curve = interpolate(start.double(), end.double(), segments, "slerp")
    return (curve[:, 1:] - curve[:, :-1]).norm(dim=-1).sum(1).to(start.dtype)


def length_ratio(latents: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Latent path length over the SLERP length between its start and ``target`` (default: its
    last point), ``(B,)``: 1 for SLERP, < 1 for LERP, the overhead for navigated paths."""
    latents = _check_paths(latents, "latents", 3, "(B, T+1, d)")
    end = latents[:, -1] if target is None else target
    if end.shape != latents[:, 0].shape:
        raise ValueError(f"target must have shape {tuple(latents[:, 0].shape)}, got {end.shape}")
    return latent_length(latents) / slerp_length(latents[:, 0], end).clamp_min(1e-12)


def endpoint_error(last: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L2 distance ``(B,)`` between each path's last point (latent or frame) and its target."""
    if last.shape != target.shape or last.ndim < 2:
        raise ValueError(f"target must have shape {tuple(last.shape)}, got {tuple(target.shape)}")
    return (last - target).flatten(1).norm(dim=1)


def band_fraction(scores: torch.Tensor, eps: float) -> torch.Tensor:
    """Share of each path's points with |D − 0.5| < ε, ``(B,)``."""
    scores = _check_paths(scores, "scores", 2, "(B, T+1)")
    return ((scores - 0.5).abs() < eps).double().mean(1)


def region_shares(
    scores: torch.Tensor, band: tuple[float, float] = (0.2, 0.8)
) -> dict[str, torch.Tensor]:
    """Share of each path's points per region (seed 001): ``hole`` D > hi, ``outlier`` D < lo,
    ``equilibrium`` otherwise (``band = (lo, hi)`` as ``AAEConfig.region_band``), each ``(B,)``."""
    scores = _check_paths(scores, "scores", 2, "(B, T+1)")
    lo, hi = band
    hole, outlier = (scores > hi).double(), (scores < lo).double()
    return {
        "hole": hole.mean(1),
        "equilibrium": (1 - hole - outlier).mean(1),
        "outlier": outlier.mean(1),
    }


def class_confidence(probs: torch.Tensor) -> torch.Tensor:
    """Top class probability at each path point, ``(B, T+1)``."""
    probs = _check_paths(probs, "probs", 3, "(B, T+1, K)")
    return probs.amax(-1)


def class_changes(classes: torch.Tensor) -> torch.Tensor:
    """Number of times the predicted class changes along each path, ``(B,)``; ``classes`` is
    ``(B, T+1)`` int labels or ``(B, T+1, K)`` probabilities/logits."""
    if classes.is_floating_point():
        classes = _check_paths(classes, "classes", 3, "(B, T+1, K)").argmax(-1)
    if classes.ndim != 2 or classes.shape[1] < 2:
        raise ValueError(f"classes must have shape (B, T+1) or (B, T+1, K), got {classes.shape}")
    return (classes[:, 1:] != classes[:, :-1]).sum(1)


def ood_frame_flags(detector: OODDetector, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """OOD flags ``(B, T+1)`` per detector and ``union`` (see :mod:`latentnav.metrics.ood`)."""
    frames = _check_paths(frames, "frames", 5, "(B, T+1, C, H, W)")
    b, n = frames.shape[:2]
    return {k: v.view(b, n) for k, v in detector.flags(frames.flatten(0, 1)).items()}


def reconstruction_floor(
    detector: OODDetector,
    reconstruct: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 512,
) -> dict[str, float]:
    """The floor: OOD-frame rate of the autoencoder's reconstructions ``reconstruct(images)`` of
    real test images ``(N, C, H, W)`` (e.g. ``aae.reconstruct``), per detector and union."""
    with torch.no_grad():
        recon = torch.cat([reconstruct(part) for part in images.split(batch_size)])
    return detector.flag_rates(recon.clamp(0, 1))


def _mean(x: torch.Tensor) -> float:
    return float(x.double().mean())


@dataclass
class PathReport:
    """Path metrics averaged over B paths (DESIGN.md §7); None where the input was not given."""

    n_paths: int
    n_points: int
    step_mean: float
    step_max: float
    ood_rate: dict[str, float] = field(default_factory=dict)
    ood_paths: float | None = None
    floor: dict[str, float] | None = None
    ppl: float | None = None
    confidence_mean: float | None = None
    confidence_min: float | None = None
    class_changes: float | None = None
    at_most_one_change: float | None = None
    length_ratio: float | None = None
    endpoint_error: float | None = None
    endpoint_pixel_error: float | None = None
    band_fraction: float | None = None
    eps: float | None = None
    regions: dict[str, float] | None = None
    per_path: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def from_paths(
        cls,
        frames: torch.Tensor,
        classifier: ReferenceClassifier | None = None,
        detector: OODDetector | None = None,
        latents: torch.Tensor | None = None,
        scores: torch.Tensor | None = None,
        target_latents: torch.Tensor | None = None,
        target_images: torch.Tensor | None = None,
        floor: Mapping[str, float] | None = None,
        eps: float = 0.1,
        band: tuple[float, float] = (0.2, 0.8),
    ) -> PathReport:
        """Every metric the inputs allow. ``classifier`` defaults to the detector's;
        ``target_latents: (B, d)`` / ``target_images: (B, C, H, W)`` are the intended endpoints."""
        step_mean, step_max = smoothness(frames)
        b, n = frames.shape[:2]
        per = {"step_mean": step_mean, "step_max": step_max}
        report = cls(b, n, _mean(step_mean), _mean(step_max))
        report.floor = dict(floor) if floor is not None else None
        classifier = classifier or (detector.classifier if detector is not None else None)
        if detector is not None:
            flags = ood_frame_flags(detector, frames)
            report.ood_rate = {k: _mean(v) for k, v in flags.items()}
            per["ood_frames"] = flags["union"].double().mean(1)
            report.ood_paths = _mean(flags["union"].any(1))
        if classifier is not None:
            flat = frames.flatten(0, 1)
            feats = classifier.features(flat).view(b, n, -1)
            probs = classifier.probs(flat).view(b, n, -1)
            conf, changes = class_confidence(probs), class_changes(probs)
            per.update(ppl=perceptual_path_length(feats), confidence_min=conf.amin(1))
            per.update(class_changes=changes)
            report.ppl = _mean(per["ppl"])
            report.confidence_mean, report.confidence_min = _mean(conf), _mean(conf.amin(1))
            report.class_changes, report.at_most_one_change = _mean(changes), _mean(changes <= 1)
        if latents is not None:
            per["length_ratio"] = length_ratio(latents, target_latents)
            report.length_ratio = _mean(per["length_ratio"])
            if target_latents is not None:
                per["endpoint_error"] = endpoint_error(latents[:, -1], target_latents)
                report.endpoint_error = _mean(per["endpoint_error"])
        if target_images is not None:
            per["endpoint_pixel_error"] = endpoint_error(frames[:, -1], target_images)
            report.endpoint_pixel_error = _mean(per["endpoint_pixel_error"])
        if scores is not None:
            per["band_fraction"] = band_fraction(scores, eps)
            report.band_fraction, report.eps = _mean(per["band_fraction"]), eps
            report.regions = {k: _mean(v) for k, v in region_shares(scores, band).items()}
        report.per_path = per
        return report

    def to_dict(self) -> dict[str, float]:
        """Flat ``{metric: value}`` (JSON-ready), in table order; absent metrics left out."""
        out: dict[str, float] = {"paths": float(self.n_paths), "points per path": self.n_points}
        out |= {f"OOD frames: {k}": v for k, v in self.ood_rate.items()}
        out |= {f"floor: {k}": v for k, v in (self.floor or {}).items()}
        rows = {
            "paths with an OOD frame": self.ood_paths,
            "step L2 mean": self.step_mean,
            "step L2 max": self.step_max,
            "PPL (ref. features)": self.ppl,
            "confidence mean": self.confidence_mean,
            "confidence min": self.confidence_min,
            "class changes": self.class_changes,
            "paths ≤ 1 class change": self.at_most_one_change,
            "length / SLERP": self.length_ratio,
            "endpoint error (latent)": self.endpoint_error,
            "endpoint error (pixels)": self.endpoint_pixel_error,
            f"|D−0.5| < {self.eps}": self.band_fraction,
        }
        out |= {k: v for k, v in rows.items() if v is not None}
        out |= {f"region: {k}": v for k, v in (self.regions or {}).items()}
        return out

    def __str__(self) -> str:
        return _table({"value": self.to_dict()})

    @staticmethod
    def compare_dict(reports: Mapping[str, PathReport]) -> dict[str, dict[str, float]]:
        """``{method: report.to_dict()}`` for JSON."""
        return {name: report.to_dict() for name, report in reports.items()}

    @staticmethod
    def compare(reports: Mapping[str, PathReport]) -> str:
        """Side-by-side table, one column per method (``{"lerp": r1, "slerp": r2, ...}``)."""
        if not reports:
            raise ValueError("reports must name at least one PathReport")
        return _table(PathReport.compare_dict(reports))


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.4g}"


def _table(columns: Mapping[str, Mapping[str, float]]) -> str:
    metrics: list[str] = []
    for column in columns.values():
        metrics += [m for m in column if m not in metrics]
    cells = [[m] + [_fmt(c.get(m)) for c in columns.values()] for m in metrics]
    header = ["metric", *columns]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = [_row(header, widths), "-+-".join("-" * w for w in widths)]
    return "\n".join(lines + [_row(row, widths) for row in cells])


def _row(cells: list[str], widths: list[int]) -> str:
    first = cells[0].ljust(widths[0])
    return " | ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)])
