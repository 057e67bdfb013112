"""Condition vectors for conditional latent generation (DESIGN.md §6): class labels become
one-hot vectors, measurement vectors pass through; both are checked against the latent batch.

Shapes: ``labels: (B,)`` int in [0, K), ``y: (B, k)`` floating.
"""

from __future__ import annotations

import torch

from latentnav._checks import check_finite

__all__ = ["one_hot", "check_labels", "check_condition", "as_condition"]


def check_labels(labels: object, num_classes: int, batch: int | None = None, name: str = "y"):
    """Check class labels ``(B,)`` of an integer dtype in [0, num_classes)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of labels (B,), got {type(labels).__name__}"
        )
    if labels.ndim != 1 or labels.dtype in (torch.bool,) or labels.is_floating_point():
        raise ValueError(
            f"{name} must be integer labels of shape (B,), got shape {tuple(labels.shape)} "
            f"and dtype {labels.dtype}"
        )
    if batch is not None and len(labels) != batch:
        raise ValueError(f"{name} must have batch size {batch}, got {len(labels)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name} labels must lie in [0, {num_classes}), got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return labels


def one_hot(labels: torch.Tensor, num_classes: int, dtype=torch.float32) -> torch.Tensor:
    """Labels ``(B,)`` in [0, K) → one-hot ``(B, K)``."""
    check_labels(labels, num_classes)
    return torch.nn.functional.one_hot(labels, num_classes).to(dtype)


def check_condition(y: object, dim: int, batch: int | None = None, name: str = "y"):
    """Check a condition batch ``y: (B, dim)`` (floating, finite, B == ``batch`` when given)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, {dim}), got {type(y).__name__}"
        )
    if y.ndim != 2 or y.shape[1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}), got shape {tuple(y.shape)}")
    if batch is not None and y.shape[0] != batch:
        raise ValueError(f"{name} must have batch size {batch} (as z), got {y.shape[0]}")
    if not y.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (one_hot() for labels), got {y.dtype}")
    check_finite(y, name)
    return y


def as_condition(y: object, dim: int, batch: int | None = None, name: str = "y") -> torch.Tensor:
    """A condition batch ``(B, dim)``: one label (int) or labels ``(B,)`` in [0, dim) become
    one-hot rows, a floating ``(B, dim)`` tensor is checked and returned."""
    if isinstance(y, int) and not isinstance(y, bool):
        y = torch.tensor([y])
    if isinstance(y, torch.Tensor) and y.ndim == 1 and not y.is_floating_point():
        check_labels(y, dim, batch, name)
        return torch.nn.functional.one_hot(y, dim).float()
    return check_condition(y, dim, batch, name)
