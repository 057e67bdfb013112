"""2-D toy distributions with holes and exact log-densities (ground truth for latent experiments).

Each toy is a :class:`~latentnav.priors.GaussianMixture`: point clusters are a few Gaussians, curves
are many small isotropic Gaussians at equal arc length (spacing ≤ std, so the density is smooth
along the curve and ≈ 0 in the holes between curves).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from latentnav.priors import GaussianMixture, spiral_points

__all__ = ["TOY_NAMES", "toy_distribution", "toy_dataset"]


def _isotropic(points: torch.Tensor, std: float, weights: torch.Tensor | None = None):
    dtype = torch.get_default_dtype()
    w = None if weights is None else weights.to(dtype)
    return GaussianMixture(points.to(dtype), stds=std, weights=w)


def _arc(center: tuple[float, float], radius: float, start: float, stop: float, n: int):
    t = torch.linspace(start, stop, n, dtype=torch.float64)
    return torch.stack([center[0] + radius * t.cos(), center[1] + radius * t.sin()], -1)


def ring8() -> GaussianMixture:
    """8 Gaussians (std 0.1) on a circle of radius 2."""
    return _isotropic(_arc((0.0, 0.0), 2.0, 0.0, 2 * math.pi * 7 / 8, 8), 0.1)


def grid25() -> GaussianMixture:
    """5×5 grid of Gaussians (std 0.1) at {-4, -2, 0, 2, 4}²."""
    ticks = torch.linspace(-4.0, 4.0, 5, dtype=torch.float64)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return _isotropic(torch.stack([gx.flatten(), gy.flatten()], -1), 0.1)


def two_moons() -> GaussianMixture:
    """Two interleaved half circles of radius 2 (the sklearn moons ×2, centred), std 0.1."""
    n = 64  # spacing 2π/63 ≈ 0.1 along each moon
    upper = _arc((-1.0, -0.25), 2.0, 0.0, math.pi, n)
    lower = _arc((1.0, 0.25), 2.0, math.pi, 2 * math.pi, n)
    return _isotropic(torch.cat([upper, lower]), 0.1)


def swiss_roll() -> GaussianMixture:
    """Spiral of 2.5 turns out to radius 4 (turns 1.6 apart), 200 Gaussians of std 0.1."""
    return _isotropic(spiral_points(200, 2.5, 4.0, 0.25), 0.1)


def concentric_rings() -> GaussianMixture:
    """Rings of radius 1, 2.5 and 4, std 0.1, mass ∝ circumference (uniform along the curves)."""
    rings = []
    for radius in (1.0, 2.5, 4.0):
        n = math.ceil(2 * math.pi * radius / 0.1)
        rings.append(_arc((0.0, 0.0), radius, 0.0, 2 * math.pi * (n - 1) / n, n))
    return _isotropic(torch.cat(rings), 0.1)


_TOYS: dict[str, Callable[[], GaussianMixture]] = {
    "ring8": ring8,
    "grid25": grid25,
    "two_moons": two_moons,
    "swiss_roll": swiss_roll,
    "concentric_rings": concentric_rings,
}
TOY_NAMES: tuple[str, ...] = tuple(_TOYS)


def toy_distribution(name: str) -> GaussianMixture:
    """The toy density named ``name`` (one of :data:`TOY_NAMES`), as an exact Gaussian mixture."""
    if name not in _TOYS:
        raise ValueError(
            f"unknown toy distribution {name!r}; accepted names: {', '.join(TOY_NAMES)}"
        )
    return _TOYS[name]()


def toy_dataset(name: str, n: int, seed: int) -> torch.Tensor:
    """``n`` samples ``(n, 2)`` from the toy ``name``; the same ``seed`` gives the same samples."""
    generator = torch.Generator().manual_seed(seed)
    return toy_distribution(name).sample(n, generator=generator)
