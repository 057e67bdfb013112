"""The "lines" data set (ACAI, Berthelot et al. 2019): a manifold known exactly (DESIGN.md §7).

Each image is a line segment of length ``size / 2`` from the image centre towards the border at
angle θ ∈ [0, 2π) (counter-clockwise from the +x axis as displayed, rows growing downwards),
anti-aliased analytically: a pixel whose centre lies at distance r from the segment has the value
clip(w/2 + 1/2 − r, 0, 1), the area a unit pixel covers of a straight stroke of width w, so an
image is a Lipschitz function of θ. The set of ideal images is a circle of angles; generation is
deterministic and needs no download.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from latentnav.data.images import ImageData

__all__ = [
    "LinesConfig",
    "LinesData",
    "angle_bins",
    "load_lines",
    "make_lines",
    "parse_lines_spec",
    "render_lines",
]

TWO_PI = 2 * math.pi
_RENDER_CHUNK = 2048


@dataclass(frozen=True)
class LinesConfig:
    """size: H = W in pixels (≥ 8); width: stroke width in pixels (> 0); train/test: number of
    images per split (≥ 1); bins: angle bins used as labels (≥ 1); seed: the angles' seed."""

    size: int = 32
    width: float = 1.5
    train: int = 10_000
    test: int = 2_000
    bins: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("size", 8), ("train", 1), ("test", 1), ("bins", 1)):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ValueError(f"{name} must be an int ≥ {low}, got {value!r}")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool)):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if not (isinstance(self.width, (int, float)) and 0 < self.width <= self.size):
            raise ValueError(f"width must be in (0, size={self.size}] pixels, got {self.width!r}")


def _check_size(size: object) -> int:
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 8):
        raise ValueError(f"size must be an int ≥ 8 (pixels), got {size!r}")
    return size


def render_lines(angles: torch.Tensor, size: int = 32, width: float = 1.5) -> torch.Tensor:
    """Ideal line images ``(N, 1, size, size)`` float32 in [0, 1] for ``angles: (N,)`` radians."""
    size = _check_size(size)
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be > 0 pixels, got {width!r}")
    if not isinstance(angles, torch.Tensor) or angles.ndim != 1:
        raise ValueError(
            f"angles must be a tensor of shape (N,), got shape {getattr(angles, 'shape', None)}"
        )
    if not angles.is_floating_point() or not torch.isfinite(angles).all():
        raise ValueError("angles must be finite floating-point radians")
    coords = torch.arange(size, dtype=torch.float64) + 0.5 - size / 2  # pixel centres
    x = coords.repeat(size)  # column offset from the centre
    y = -coords.repeat_interleave(size)  # row offset, y up
    pixels = torch.stack([x, y], 1)  # (HW, 2)
    radius = size / 2
    out = []
    for part in angles.double().split(_RENDER_CHUNK):
        u = torch.stack([part.cos(), part.sin()], 1)  # (n, 2) unit directions
        t = (pixels @ u.T).clamp(0.0, radius)  # (HW, n) position along the segment
        dist = (pixels[:, :, None] - t[:, None, :] * u.T[None]).norm(dim=1)  # (HW, n)
        out.append((width / 2 + 0.5 - dist).clamp(0.0, 1.0).T)
    images = torch.cat(out) if out else torch.zeros(0, size * size, dtype=torch.float64)
    return images.float().view(-1, 1, size, size)


def _angles(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * TWO_PI


def make_lines(
    n: int, size: int = 32, seed: int = 0, width: float = 1.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``(n, 1, size, size)`` with θ ~ U[0, 2π) from a generator seeded by ``seed``,
    and their angles ``(n,)`` float64."""
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n must be an int ≥ 1, got {n!r}")
    angles = _angles(n, torch.Generator().manual_seed(seed))
    return render_lines(angles, size, width), angles


def angle_bins(angles: torch.Tensor, bins: int) -> torch.Tensor:
    """Label ``(N,)`` int64: the index of the bin [2πk/bins, 2π(k+1)/bins) holding each angle."""
    k = torch.floor(torch.remainder(angles.double(), TWO_PI) / (TWO_PI / bins)).long()
    return k.clamp(0, bins - 1)


@dataclass
class LinesData(ImageData):
    """:class:`ImageData` of line images whose labels are angle bins, with ``angles: (N,)``
    float64 radians kept through :meth:`subset`."""

    angles: torch.Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.images)
        if not isinstance(self.angles, torch.Tensor) or self.angles.shape != (n,):
            shape = getattr(self.angles, "shape", None)
            raise ValueError(f"angles must be a tensor of shape (N,) = ({n},), got {shape}")

    def subset(self, idx: Sequence[int] | torch.Tensor | np.ndarray | slice) -> LinesData:
        """The items at ``idx``, angles included."""
        if not isinstance(idx, slice):
            idx = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
            if idx.dtype != torch.bool:
                idx = idx.long().reshape(-1)
        return LinesData(self.images[idx], self.labels[idx], self.classes, self.angles[idx])


def _classes(bins: int) -> list[str]:
    step = 360 / bins
    return [f"{k * step:g}-{(k + 1) * step:g}°" for k in range(bins)]


def load_lines(split: str = "train", config: LinesConfig | None = None) -> LinesData:
    """The ``split`` ("train" or "test") of the lines set: one generator seeded by
    ``config.seed`` draws the train angles first, then the test angles, so the train split does
    not depend on ``config.test``."""
    config = config or LinesConfig()
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    g = torch.Generator().manual_seed(config.seed)
    angles = _angles(config.train, g)
    if split == "test":
        angles = _angles(config.test, g)
    images = render_lines(angles, config.size, config.width)
    labels = angle_bins(angles, config.bins)
    return LinesData(images, labels, _classes(config.bins), angles)


def parse_lines_spec(spec: str) -> LinesConfig:
    """``"lines"`` or ``"lines:key=value,..."`` with keys of :class:`LinesConfig`
    (e.g. ``lines:size=64,train=2000``) → the config."""
    head, _, options = spec.partition(":")
    if head != "lines":
        raise ValueError(f"not a lines spec: {spec!r}")
    types = {f.name: (float if f.name == "width" else int) for f in fields(LinesConfig)}
    values: dict[str, int | float] = {}
    for item in filter(None, options.split(",")):
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or key not in types:
            raise ValueError(
                f"lines spec option {item!r} must be key=value with key in {sorted(types)}"
            )
        try:
            values[key] = types[key](text)
        except ValueError as e:
            expected = types[key].__name__
            raise ValueError(f"lines spec option {key}={text!r}: expected {expected}") from e
    return LinesConfig(**values)
