"""Measurement operators y = A(x) on image batches, for inverse problems (DESIGN.md §6).

Each operator maps ``x: (B, C, H, W)`` to ``y`` and has an adjoint Aᵀ with
⟨A x, y⟩ = ⟨x, Aᵀ y⟩. Masks are diagonal 0/1 operators (self-adjoint); average pooling by a
factor f has the nearest-neighbour upsampling divided by f² as its adjoint. Operators are picked by
name from ``OPERATORS``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from latentnav._checks import check_finite

__all__ = ["Operator", "RandomMask", "SquareHole", "Downsample", "OPERATORS", "make_operator"]


def _check_batch(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}"
        )
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (B, C, H, W) with B ≥ 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    check_finite(x, name)
    return x


class Operator:
    """A linear measurement A: ``__call__(x: (B, C, H, W)) → y``, ``adjoint(y) → (B, C, H, W)``."""

    name = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def condition(self, x: torch.Tensor, encoder=None) -> torch.Tensor:
        """The condition vector of the measurement: A(x) flattened to (B, k), or
        ``encoder(Aᵀ A x)`` (e.g. an AAE encoder on the back-projected measurement) when given."""
        y = self(x)
        return y.flatten(1) if encoder is None else encoder(self.adjoint(y))


class _Mask(Operator):
    """y = M ⊙ x for a fixed 0/1 mask M: (C, H, W); self-adjoint, y has x's shape."""

    def mask(self, shape: tuple[int, int, int], device, dtype) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x):
        _check_batch(x, "x")
        return x * self.mask(tuple(x.shape[1:]), x.device, x.dtype)

    def adjoint(self, y):
        _check_batch(y, "y")
        return y * self.mask(tuple(y.shape[1:]), y.device, y.dtype)


class RandomMask(_Mask):
    """Keeps a fixed random fraction ``keep`` of the pixels (the same for every image and channel),
    drawn from ``seed`` for each image size."""

    name = "random_mask"

    def __init__(self, keep: float = 0.25, seed: int = 0):
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        self.keep, self.seed = float(keep), int(seed)

    def mask(self, shape, device, dtype):
        c, h, w = shape
        gen = torch.Generator().manual_seed(self.seed)
        n = h * w
        kept = torch.randperm(n, generator=gen)[: max(1, round(self.keep * n))]
        m = torch.zeros(n)
        m[kept] = 1.0
        return m.view(1, h, w).expand(c, h, w).to(device=device, dtype=dtype)


class SquareHole(_Mask):
    """Zeroes a ``size`` × ``size`` square centred in the image (inpainting)."""

    name = "square_hole"

    def __init__(self, size: int):
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"size must be an int ≥ 1, got {size!r}")
        self.size = size

    def mask(self, shape, device, dtype):
        c, h, w = shape
        if self.size > min(h, w):
            raise ValueError(f"size={self.size} is larger than the image ({h} × {w})")
        m = torch.ones(c, h, w, device=device, dtype=dtype)
        top, left = (h - self.size) // 2, (w - self.size) // 2
        m[:, top : top + self.size, left : left + self.size] = 0
        return m


class Downsample(Operator):
    """Average pooling by ``factor``: (B, C, H, W) → (B, C, H/f, W/f); Aᵀ y = nearest(y) / f²."""

    name = "downsample"

    def __init__(self, factor: int = 2):
        if not (isinstance(factor, int) and factor >= 2):
            raise ValueError(f"factor must be an int ≥ 2, got {factor!r}")
        self.factor = factor

    def __call__(self, x):
        _check_batch(x, "x")
        f = self.factor
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(
                f"x must have H and W divisible by factor={f}, got shape {tuple(x.shape)}"
            )
        return F.avg_pool2d(x, f)

    def adjoint(self, y):
        _check_batch(y, "y")
        return F.interpolate(y, scale_factor=self.factor, mode="nearest") / self.factor**2


OPERATORS: dict[str, type[Operator]] = {
    cls.name: cls for cls in (RandomMask, SquareHole, Downsample)
}


def make_operator(name: str, **kw) -> Operator:
    """The operator registered as ``name`` in ``OPERATORS``, built with ``kw``."""
    if name not in OPERATORS:
        raise ValueError(f"operator must be one of {tuple(OPERATORS)}, got {name!r}")
    return OPERATORS[name](**kw)
