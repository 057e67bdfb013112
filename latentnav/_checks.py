"""Argument checks shared by the public API: errors name the argument and what was expected."""

from __future__ import annotations

import torch

__all__ = ["check_latents", "check_finite", "check_images", "check_positive"]


def check_finite(x: torch.Tensor, name: str) -> None:
    if x.device.type == "meta":  # shapes only: there are no values to check or compute with
        raise ValueError(f"{name} is on the meta device (no values); move it with .to('cpu')")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or Inf)")


def check_latents(z: object, dim: int | None, name: str = "z") -> torch.Tensor:
    """Check a latent batch ``z: (B, d)`` (B ≥ 1, floating, finite, d == ``dim`` when given)."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, d), got {type(z).__name__}")
    if z.ndim != 2:
        raise ValueError(f"{name} must have shape (B, d), got shape {tuple(z.shape)}")
    if z.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(z.shape)}); need B ≥ 1")
    if dim is not None and z.shape[1] != dim:
        raise ValueError(f"{name} must have latent dim d={dim}, got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {z.dtype}")
    check_finite(z, name)
    return z


def check_images(x: object, shape: tuple[int, ...] | None, name: str = "x") -> torch.Tensor:
    """Check an image batch ``x: (B, C, H, W)`` (or ``(B, n)`` for flat data) against ``shape``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must be a batch (B, ...), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); need B ≥ 1")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{name} must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor in [0, 1], got dtype {x.dtype}")
    check_finite(x, name)
    return x


def check_positive(value: float, name: str) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value
