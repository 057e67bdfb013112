"""Faint frames as a cost (DESIGN.md §3; issue 12, RESULTS §6.22): the ink term of the energy.

A path between two digits that minimises decoded length passes near the pixel average of its
ends, a frame with less ink than any real digit (the crossfade's midpoint of two strokes that do
not overlap has about 1/√2 of their norm). On MNIST at d = 8 (with labels, 300 dev pairs) 9.5 %
of the optimised path's interior frames were fainter than the faintest 5 % of reconstructions;
45 % of those were flagged OOD, against 2.9 % of the rest. With n₀ the ``quantile`` of the pixel
norms ‖G(E(x))‖ of reconstructed training images (:func:`ink_floor`),

    Ink(n₀, w)    w · Σ_{k=1}^{T−1} max(log n − log ‖G(z_k)‖, 0),  n = min(n₀, ‖x_0‖, ‖x_T‖)  (ink)

is zero on any frame at least as bright as that share of the data, or as the fainter of the
path's own ends (a path from a thin 1 may pass frames as faint as that 1), and grows with the log
of how much fainter it is, so its weight is free of the images' scale (``endpoints=False``: n =
n₀). Shapes: z (B, T + 1, d).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from latentnav.navigation.energy import PathContext

__all__ = ["Ink", "ink_floor", "stored_latents"]

FLOOR_QUANTILE = 0.2  # n₀: the 20th percentile of the reconstructions' norms (RESULTS §6.22, dev)
FLOOR_SAMPLES = 4096  # stored latents decoded for n₀ (evenly spaced through the bank)


class Ink:
    """w · Σ_{k=1}^{T−1} max(log n − log ‖G(z_k)‖, 0) → (B,), n = min(n₀, ‖x_0‖, ‖x_T‖) (n₀ with
    ``endpoints=False``): ``floor`` n₀ > 0 in the pixel units of the decoder's frames, ``weight``
    w ≥ 0."""

    def __init__(self, floor: float, weight: float, endpoints: bool = True):
        if not (isinstance(floor, (int, float)) and math.isfinite(floor) and floor > 0):
            raise ValueError(f"floor (n₀) must be a finite float > 0, got {floor!r}")
        if not weight >= 0:
            raise ValueError(f"weight (w) must be ≥ 0, got {weight}")
        self.floor, self.weight, self.endpoints = float(floor), float(weight), bool(endpoints)

    def __call__(self, context: PathContext) -> torch.Tensor:
        return self.per_point(context).sum(1)

    def per_point(self, context: PathContext) -> torch.Tensor:
        """w · max(log n − log ‖G(z_k)‖, 0) for each interior point → (B, T − 1)."""
        b, n = context.z.shape[:2]
        if n <= 2:
            return context.z.new_zeros(b, 0)
        norm = context.images.reshape(b, n, -1).norm(dim=-1).clamp_min(1e-12)
        floor = norm.new_full((b, 1), self.floor)
        if self.endpoints:  # the fainter end, when fainter than n₀ (fixed: no gradient)
            floor = torch.minimum(floor, norm[:, [0, -1]].detach().amin(1, keepdim=True))
        return self.weight * (floor.log() - norm[:, 1:-1].log()).clamp_min(0)

    def config(self) -> dict[str, Any]:
        return {"term": "ink", "weight": self.weight, "floor": self.floor,
                "endpoints": self.endpoints}  # fmt: skip


def stored_latents(aae: nn.Module) -> torch.Tensor | None:
    """Latents of training images an AAE stores (``latent_bank``, else the data graph's
    ``data_latents``; both written by ``latentnav train-aae``), or None: (N, d)."""
    for name in ("latent_bank", "data_latents"):
        found = getattr(aae, name, None)
        if found is not None and len(found):
            return found
    return None


@torch.no_grad()
def ink_floor(
    aae: nn.Module,
    images: torch.Tensor | None = None,
    quantile: float = FLOOR_QUANTILE,
    batch_size: int = 4096,
) -> float:
    """n₀: the ``quantile`` of ‖G(E(x))‖ over ``images`` (N, *image_shape), or, without images,
    of ‖G(z)‖ over the AAE's stored latents (:func:`stored_latents`); at most
    :data:`FLOOR_SAMPLES` of either, evenly spaced, so the same on every call."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
    device = next(aae.parameters()).device
    if images is None:
        z = stored_latents(aae)
        if z is None:
            raise ValueError(
                "the ink floor needs images= training images, or an AAE that stores their "
                "latents (aae.latent_bank: `latentnav train-aae` stores it)"
            )
        parts = [aae.decoder(part.to(device)) for part in _spread(z).split(batch_size)]
    else:
        if not (isinstance(images, torch.Tensor) and images.is_floating_point() and len(images)):
            raise ValueError("images must be a non-empty float tensor (N, *image_shape) in [0, 1]")
        parts = [aae.reconstruct(x.to(device)) for x in _spread(images).split(batch_size)]
    norms = torch.cat([p.flatten(1).norm(dim=1).double().cpu() for p in parts])
    floor = float(torch.quantile(norms, quantile))
    if not floor > 0:
        raise ValueError(f"the reconstructions' {quantile:.0%} norm quantile is {floor}: no ink")
    return floor


def _spread(rows: torch.Tensor) -> torch.Tensor:
    """At most :data:`FLOOR_SAMPLES` rows, evenly spaced from the first to the last."""
    if len(rows) <= FLOOR_SAMPLES:
        return rows
    return rows[torch.linspace(0, len(rows) - 1, FLOOR_SAMPLES).round().long()]
