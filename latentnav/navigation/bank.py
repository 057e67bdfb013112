"""The bank of a data graph (DESIGN.md §3; RESULTS §6.13): latents of training images, each one
decoding back to its image where the decoder can.

An encoder is amortised: E(x) is one network's guess, and where it tears the data manifold (a
circle of angles folded into a plane) G(E(x)) lands on another angle or class than x. Inverting
the decoder, z* = argmin_z ‖G(z) − x‖² from z = E(x), closes that gap for the images whose
reconstruction error is in the tail, so every node of the graph decodes near its own image.
Shapes: images (N, *image_shape); latents (N, d).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from latentnav._modules import evaluating, frozen
from latentnav.compass import encode_all

__all__ = ["data_bank", "invert", "reconstruction_errors"]


@torch.no_grad()
def reconstruction_errors(
    aae: nn.Module, images: torch.Tensor, z: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """‖G(z_i) − x_i‖ (N,) in pixels, on z's device."""
    return torch.cat(
        [(aae.decode(part).flatten(1).float() - x.to(part).flatten(1).float()).norm(dim=1)
         for part, x in zip(z.split(chunk), images.split(chunk), strict=True)]
    )  # fmt: skip


def invert(
    aae: nn.Module,
    images: torch.Tensor,
    z: torch.Tensor,
    steps: int = 500,
    lr: float = 0.01,
    chunk: int = 1024,
) -> torch.Tensor:
    """z* ≈ argmin_z ‖G(z) − x‖² by Adam from ``z`` (N, d), one latent per image of ``images``
    (N, *image_shape); a latent whose error does not fall keeps its start."""
    if not (isinstance(steps, int) and steps >= 1 and lr > 0):
        raise ValueError(f"steps must be an int ≥ 1 and lr > 0, got steps={steps!r}, lr={lr!r}")
    if len(images) != len(z):
        raise ValueError(f"images and z must pair up, got {len(images)} and {len(z)}")
    out = []
    with frozen(aae), torch.enable_grad():
        for start, x in zip(z.split(chunk), images.split(chunk), strict=True):
            x = x.to(start).flatten(1).float()
            w = start.detach().clone().requires_grad_(True)
            optimizer = torch.optim.Adam([w], lr=lr)
            for _ in range(steps):
                loss = (aae.decode(w).flatten(1).float() - x).square().sum(1)
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
            with torch.no_grad():
                better = reconstruction_errors(aae, x, w) < reconstruction_errors(aae, x, start)
                out.append(torch.where(better[:, None], w.detach(), start))
    return torch.cat(out) if out else z.clone()


@torch.no_grad()
def data_bank(
    aae: nn.Module,
    images: torch.Tensor,
    percentile: float = 100.0,
    invert_above: float | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """Latents E(x) (N′, d) of ``images`` (N, *image_shape) whose reconstruction error
    ‖G(E(x)) − x‖ is at most its ``percentile`` (default 100: all; where the encoder tears the
    manifold the badly reconstructed images are a latent graph's only bridges, and dropping them
    disconnects it, RESULTS §6.13); ``invert_above=q``: the latents whose error is above its
    q-quantile (q in [0, 1)) replaced by :func:`invert`'s."""
    if not (isinstance(images, torch.Tensor) and images.ndim >= 2 and len(images) >= 2):
        raise ValueError(f"images must be a batch (N ≥ 2, *image_shape), got {images!r:.60}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    if invert_above is not None and not 0 <= invert_above < 1:
        raise ValueError(f"invert_above must be a quantile in [0, 1) or None, got {invert_above!r}")
    with evaluating(aae):
        z = encode_all(aae, images, chunk)  # on the AAE's device
        error = reconstruction_errors(aae, images, z, chunk)
    host = error.cpu().numpy()
    keep = torch.as_tensor(host <= np.percentile(host, percentile))  # one copy to the host
    z, error, images = z[keep.to(z.device)], error[keep.to(error.device)], images[keep]
    if invert_above is not None:
        worst = error > torch.quantile(error.double(), invert_above).to(error)
        if worst.any():
            z = z.clone()
            z[worst] = invert(aae, images[worst.to(images.device)], z[worst])
    return z
