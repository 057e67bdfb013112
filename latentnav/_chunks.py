"""Streaming large batches: chunks, and noise that does not depend on them.

A batch of B rows (pairs to navigate, samples to draw) is processed in consecutive chunks of at
most ``size`` rows (:func:`map_chunks`), so working memory is bounded by the chunk, not B. The
result equals the unchunked one when every row's computation depends on that row alone; the
random part is made so by :class:`IndexNoise`: its Gaussian ξ[i, j] is a pure function of
(seed, draw, i, j), with i < 2³² the row's index in the whole call, never its place in a chunk
or the batch size. ξ = √(−2 ln u₁) cos(2π u₂) (Box–Muller) with u₁, u₂ ∈ (0, 1) from a 32-bit
counter-based hash (Wellons' lowbias32, chained over the key words) in int64 tensor code (no
overflow: every product stays below 2⁶³ in magnitude): vectorised, and the same on every device.
Streams are not torch's: the same seed gives other numbers than ``torch.Generator``. Cost on one
CPU thread: ≈ 0.2 ms per draw of (64, 8), 0.35 ms of (1024, 8) (torch.randn: 0.005 / 0.035 ms).

Defaults: navigation chunks of ``NAVIGATION_CHUNK`` = 1024 pairs, sampling chunks of
``SAMPLING_CHUNK`` = 16384 samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

__all__ = [
    "NAVIGATION_CHUNK",
    "SAMPLING_CHUNK",
    "IndexNoise",
    "check_chunk_size",
    "map_chunks",
]

NAVIGATION_CHUNK = 1024
SAMPLING_CHUNK = 16384
_MASK = 0xFFFFFFFF
Part = TypeVar("Part")


def _mul32(x, c: int):
    """(x · c) mod 2³² for x in [0, 2³²) (int or int64 tensor), without int64 overflow: a
    constant c ≥ 2³¹ is replaced by c − 2³² (same residue, |x · c| < 2⁶³)."""
    return (x * (c - (1 << 32) if c >= 1 << 31 else c)) & _MASK


def _hash32(x):
    """lowbias32 (C. Wellons): a bijective 32-bit mix, on ints or int64 tensors in [0, 2³²)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _absorb(h, word):
    """Fold a non-negative word (int or int64 tensor, < 2⁶³) into the running hash h."""
    return _hash32(_hash32(h ^ (word & _MASK)) ^ (word >> 32))


def _uniform(bits: torch.Tensor, wide: bool) -> torch.Tensor:
    """32-bit ints → u ∈ (0, 1): float64 from all 32 bits (``wide``) or float32 from the top 24."""
    if wide:
        return (bits.double() + 0.5) / 2.0**32
    return ((bits >> 8).float() + 0.5) / 2.0**24


def _key(seed: int, stream: Sequence[int]) -> int:
    h = _absorb(0x9E3779B9, seed % (1 << 64) >> 1)  # keep < 2⁶³; the lowest bit goes next
    h = _absorb(h, seed & 1)
    for word in stream:
        if not (isinstance(word, int) and word >= 0):
            raise ValueError(f"noise stream words must be ints ≥ 0, got {stream!r}")
        h = _absorb(h, word)
    return h


class IndexNoise:
    """Per-row Gaussian noise: ``normal(stream, rows, d)`` gives ξ (n, d) for the rows
    ``first + rows`` of a call; ``randn(shape)`` is the next draw (stream = draw counter) for rows
    0..B−1 of this chunk, so it can stand in for a ``torch.Generator`` in the samplers."""

    def __init__(self, seed: int, first: int = 0):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if not (isinstance(first, int) and first >= 0):
            raise ValueError(f"first (the chunk's first row) must be an int ≥ 0, got {first!r}")
        self.seed, self.first, self.draws = seed, first, 0

    def at(self, first: int) -> IndexNoise:
        """The same streams for the chunk whose first row is ``first`` (draw counter at 0)."""
        return IndexNoise(self.seed, first)

    def normal(
        self,
        stream: Sequence[int],
        rows: torch.Tensor | int,
        d: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> torch.Tensor:
        """ξ: (n, d) for ``rows`` (int64 (n,) local indices, or n for 0..n−1) of stream
        ``stream`` (a tuple of ints ≥ 0, e.g. (step, correction))."""
        if isinstance(rows, int):
            rows = torch.arange(rows, device=device)
        index = rows.to(device=device, dtype=torch.int64)[:, None] + self.first
        h = _hash32((index & _MASK) ^ _key(self.seed, stream))  # (n, 1); rows below 2³²
        bits = _hash32(h ^ torch.arange(2 * d, device=device, dtype=torch.int64))  # (n, 2d)
        u = _uniform(bits, dtype == torch.float64)
        u1, u2 = u[:, 0::2], u[:, 1::2]  # (n, d) each; column j from bits 2j, 2j + 1
        xi = (-2 * torch.log(u1)).sqrt() * torch.cos(2 * math.pi * u2)
        return xi.to(dtype)

    def randn(
        self,
        shape: Sequence[int],
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> torch.Tensor:
        """The next draw: ξ of ``shape`` (B, *rest), row i of this chunk from row first + i."""
        b, rest = shape[0], tuple(shape[1:])
        xi = self.normal((self.draws,), b, math.prod(rest), dtype, device)
        self.draws += 1
        return xi.view(b, *rest)


def check_chunk_size(size: object, name: str = "chunk_size") -> int:
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 1):
        raise ValueError(f"{name} must be an int ≥ 1, got {size!r}")
    return size


def map_chunks(fn: Callable[[int, int], Part], n: int, size: int) -> list[Part]:
    """[fn(start, stop) for consecutive ranges of at most ``size`` rows covering 0..n]. A CUDA
    out-of-memory error halves the size for the remaining rows (down to 1) and retries."""
    check_chunk_size(size)
    parts, start = [], 0
    while start < n:
        stop = min(n, start + size)
        try:
            parts.append(fn(start, stop))
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise
            size = max(1, size // 2)
            torch.cuda.empty_cache()
            continue
        start = stop
    return parts
