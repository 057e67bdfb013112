"""The exact-manifold judge for the lines data (DESIGN.md §7, "Exact manifold").

The ideal images form a circle of angles θ, so a decoded frame has a manifold coordinate θ̂ (the
angle of the nearest ideal image in pixel L2) and a distance to the manifold. A frame is
off-manifold when that distance exceeds a threshold set on reconstructions of real test images
(:meth:`LineManifold.threshold_from`); a path is right when θ̂ moves monotonically along the
shorter arc from its first frame's θ̂ to its last's (:func:`arc_steps`, :func:`monotone`), and its
ACAI smoothness (:func:`acai_smoothness`) is 0 for an even rotation.

Shapes: ``frames: (B, T+1, 1, H, W)``; ``theta: (B, T+1)`` radians; per-path results ``(B,)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from latentnav._checks import check_finite, check_images
from latentnav.data.lines import render_lines
from latentnav.metrics.paths import _check_paths, _table, frame_steps

__all__ = [
    "LineManifold",
    "ManifoldReport",
    "wrap_angle",
    "arc_steps",
    "monotone",
    "acai_smoothness",
]

TWO_PI = 2 * math.pi
Targets = tuple[torch.Tensor, torch.Tensor] | None


def wrap_angle(theta: torch.Tensor) -> torch.Tensor:
    """Angles mapped to (−π, π]."""
    return math.pi - torch.remainder(math.pi - theta, TWO_PI)


class LineManifold:
    """A bank of ``grid`` ideal line images at θ_j = 2πj / grid (:func:`render_lines`).
    The grid step δ = 2π / grid (0.1° at the default 3600) bounds the error of θ̂ on ideal images
    by about δ/2 (0.51 δ measured over 2000 random angles: the pixel grid makes the distance
    slightly asymmetric about the true angle)."""

    def __init__(self, size: int = 32, grid: int = 3600, width: float = 1.5, chunk: int = 1024):
        if not (isinstance(grid, int) and not isinstance(grid, bool) and grid >= 8):
            raise ValueError(f"grid must be an int ≥ 8 (angles on the circle), got {grid!r}")
        if not (isinstance(chunk, int) and chunk >= 1):
            raise ValueError(f"chunk must be an int ≥ 1 (frames per batch), got {chunk!r}")
        self.size, self.grid, self.width, self.chunk = size, grid, width, chunk
        self.angles = torch.arange(grid, dtype=torch.float64) * (TWO_PI / grid)
        self.bank = render_lines(self.angles, size, width).flatten(1)  # (grid, H·W)
        self.bank_sq = self.bank.square().sum(1)

    @property
    def step(self) -> float:
        """The grid step δ = 2π / grid in radians."""
        return TWO_PI / self.grid

    def _check_frames(self, frames: object, name: str = "frames") -> torch.Tensor:
        return check_images(frames, (1, self.size, self.size), name)

    @torch.no_grad()
    def project(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest ideal image of each frame ``(N, 1, H, W)`` → θ̂ ``(N,)`` float64 radians in
        [0, 2π) and its pixel L2 distance ``(N,)``; ``chunk`` frames at a time."""
        frames = self._check_frames(frames)
        flat = frames.detach().to("cpu", torch.float32).flatten(1)
        index = torch.cat(
            [
                (self.bank_sq[None] - 2 * part @ self.bank.T).argmin(1)
                for part in flat.split(self.chunk)
            ]
        )
        distance = (flat - self.bank[index]).norm(dim=1)  # exact, not from the expansion
        return self.angles[index], distance

    def threshold_from(self, reconstructions: torch.Tensor, percentile: float = 99.0) -> float:
        """The off-manifold threshold (DESIGN.md §7): the ``percentile`` of the distances of
        reconstructions ``(N, 1, H, W)`` of real test images (or any on-manifold reference)."""
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        _, distance = self.project(self._check_frames(reconstructions, "reconstructions"))
        return float(torch.quantile(distance.double(), percentile / 100))

    def coordinates(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Paths ``(B, T+1, 1, H, W)`` → θ̂ ``(B, T+1)`` and distance ``(B, T+1)``."""
        frames = _check_paths(frames, "frames", 5, "(B, T+1, 1, H, W)")
        b, n = frames.shape[:2]
        theta, distance = self.project(frames.flatten(0, 1))
        return theta.view(b, n), distance.view(b, n)


def _check_theta(theta: object) -> torch.Tensor:
    if not isinstance(theta, torch.Tensor) or theta.ndim != 2 or theta.shape[1] < 2:
        shape = getattr(theta, "shape", None)
        raise ValueError(f"theta must be a tensor of shape (B, T+1) with T ≥ 1, got {shape}")
    if not theta.is_floating_point():
        raise TypeError(f"theta must be floating-point radians, got dtype {theta.dtype}")
    check_finite(theta, "theta")
    return theta.double()


def _check_targets(theta: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
    if targets is None:
        return theta[:, 0], theta[:, -1]
    theta_a, theta_b = (torch.as_tensor(t, dtype=torch.float64) for t in targets)
    b = theta.shape[0]
    if theta_a.shape != (b,) or theta_b.shape != (b,):
        raise ValueError(
            f"targets must be (theta_a, theta_b) of shape ({b},) each, "
            f"got {tuple(theta_a.shape)} and {tuple(theta_b.shape)}"
        )
    check_finite(theta_a, "theta_a")
    check_finite(theta_b, "theta_b")
    return theta_a, theta_b


def arc_steps(theta: torch.Tensor, targets: Targets = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed progress of each step along the shorter arc from θ_a to θ_b, ``(B, T)``, and the
    arc's length ``(B,)`` in [0, π]. ``targets = (θ_a, θ_b)``, each ``(B,)`` (e.g. the true
    angles of the endpoint images), defaults to the path's own θ_0 and θ_T. Steps are wrapped to
    (−π, π] (the angle is unwrapped along the path); the direction is that of wrap(θ_b − θ_a),
    counter-clockwise at exactly π."""
    theta = _check_theta(theta)
    theta_a, theta_b = _check_targets(theta, targets)
    arc = wrap_angle(theta_b - theta_a)
    direction = torch.where(arc < 0, -1.0, 1.0).to(theta)
    return direction[:, None] * wrap_angle(theta.diff(dim=1)), arc.abs()


def monotone(theta: torch.Tensor, tolerance: float, targets: Targets = None) -> torch.Tensor:
    """``(B,)`` bool: no step goes back along the shorter arc (see :func:`arc_steps`) by more
    than ``tolerance`` radians, and the steps add up to that arc within π (not arc + 2πk: a path
    that winds round fails)."""
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be ≥ 0 radians, got {tolerance}")
    progress, arc = arc_steps(theta, targets)
    no_back_step = (progress >= -tolerance).all(1)
    return no_back_step & ((progress.sum(1) - arc).abs() < math.pi)


def acai_smoothness(
    theta: torch.Tensor, targets: Targets = None, min_arc: float = 1e-9
) -> torch.Tensor:
    """ACAI's smoothness (DESIGN.md §7) ``(B,)``: max_t |wrap(θ_{t+1} − θ_t)| / arc − 1/T for T
    steps, arc the shorter arc from θ_a to θ_b (:func:`arc_steps`, at least ``min_arc``): 0 for
    an even rotation, 1 − 1/T when one step carries the whole rotation, larger for detours and
    jitter. Undefined when θ_a = θ_b (then pass the true ``targets``)."""
    progress, arc = arc_steps(theta, targets)
    steps = progress.shape[1]
    return progress.abs().amax(1) / arc.clamp_min(min_arc) - 1.0 / steps


def _mean(x: torch.Tensor) -> float:
    return float(x.double().mean())


@dataclass
class ManifoldReport:
    """Exact-manifold figures averaged over B paths of T + 1 frames: share of interior frames
    off the manifold, share of paths monotone along the shorter arc, ACAI smoothness, the largest
    angular step (degrees), the mean distance to the manifold and the largest pixel step."""

    n_paths: int
    n_points: int
    threshold: float
    tolerance: float
    off_manifold: float
    monotone: float
    smoothness: float
    largest_step_deg: float
    distance_mean: float
    step_max: float
    endpoint_error_deg: float | None = None
    per_path: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def from_paths(
        cls,
        manifold: LineManifold,
        frames: torch.Tensor,
        threshold: float,
        tolerance: float | None = None,
        targets: Targets = None,
    ) -> ManifoldReport:
        """Judge ``frames: (B, T+1, 1, H, W)`` with the off-manifold ``threshold`` (see
        :meth:`LineManifold.threshold_from`); ``targets = (θ_a, θ_b)`` ``(B,)`` each, the true
        angles of the endpoint images, define the arc (default: θ̂ of the first and last frames)
        and give the endpoint angle error. ``tolerance`` for back-steps defaults to two grid
        steps 2δ: θ̂ of an ideal image is within about δ/2 of its angle, so two frames in order
        can show a back-step of about δ from the grid alone, and a second δ absorbs near-ties
        between neighbouring grid images in blurred decoded frames (0.2° at grid 3600, far
        below what a 32-pixel image can show: the tip of a 16-pixel line moves 0.06 px)."""
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0 (pixel L2), got {threshold}")
        tolerance = 2 * manifold.step if tolerance is None else tolerance
        theta, distance = manifold.coordinates(frames)
        b, n = theta.shape
        off = (distance[:, 1:-1] > threshold).double()
        progress, _ = arc_steps(theta, targets)
        per = {
            "off_manifold": off.mean(1) if n > 2 else torch.zeros(b, dtype=torch.float64),
            "monotone": monotone(theta, tolerance, targets),
            "smoothness": acai_smoothness(theta, targets, min_arc=manifold.step),
            "largest_step_deg": progress.abs().amax(1) * (180 / math.pi),
            "distance_mean": distance.double().mean(1),
            "step_max": frame_steps(frames).amax(1).double(),
            "theta": theta,
        }
        if targets is not None:
            theta_a, theta_b = _check_targets(theta, targets)
            ends = wrap_angle(torch.stack([theta[:, 0] - theta_a, theta[:, -1] - theta_b], 1))
            per["endpoint_error_deg"] = ends.abs().mean(1) * (180 / math.pi)
        return cls(
            b,
            n,
            float(threshold),
            float(tolerance),
            **{k: _mean(v) for k, v in per.items() if k != "theta"},
            per_path=per,
        )

    def to_dict(self) -> dict[str, float]:
        """Flat ``{metric: value}`` (JSON-ready), in table order."""
        out = {
            "paths": float(self.n_paths),
            "points per path": float(self.n_points),
            "off-manifold threshold": self.threshold,
            "off-manifold interior frames": self.off_manifold,
            "monotone paths": self.monotone,
            "ACAI smoothness": self.smoothness,
            "largest step (deg)": self.largest_step_deg,
            "distance to manifold": self.distance_mean,
            "step L2 max": self.step_max,
        }
        if self.endpoint_error_deg is not None:
            out["endpoint angle error (deg)"] = self.endpoint_error_deg
        return out

    def __str__(self) -> str:
        return self.table()

    def table(self) -> str:
        """The figures as a one-column table."""
        return _table({"value": self.to_dict()})

    @staticmethod
    def compare_dict(reports: Mapping[str, ManifoldReport]) -> dict[str, dict[str, float]]:
        """``{method: report.to_dict()}`` for JSON."""
        return {name: report.to_dict() for name, report in reports.items()}

    @staticmethod
    def compare(reports: Mapping[str, ManifoldReport]) -> str:
        """Side-by-side table, one column per method."""
        if not reports:
            raise ValueError("reports must name at least one ManifoldReport")
        return _table(ManifoldReport.compare_dict(reports))
