"""Latent classifier p(y | z) on the frozen encoder: the class term of the path energy (DESIGN.md
§3; :func:`latentnav.path_optimizer.optimize_paths` with ``class_weight > 0``).

An MLP trained with cross-entropy on encoded labelled images E(x). Labels are needed once, to fit
it; navigation then needs none (the endpoints' classes are its own predictions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from latentnav._modules import evaluating
from latentnav.checkpoint import build_checked, save_tensors
from latentnav.compass import encode_all
from latentnav.networks import mlp

__all__ = [
    "LatentClassifier",
    "LatentClassifierConfig",
    "fit_latent_classifier",
    "save_latent_classifier",
    "load_latent_classifier",
]

CHECKPOINT_FORMAT = "latentnav.latent_classifier/1"


class LatentClassifier(nn.Module):
    """z (B, latent_dim) → class logits (B, num_classes)."""

    def __init__(self, latent_dim: int, num_classes: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.latent_dim, self.num_classes, self.hidden = latent_dim, num_classes, tuple(hidden)
        self.net = mlp([latent_dim, *hidden, num_classes], activation=nn.SiLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@dataclass(frozen=True)
class LatentClassifierConfig:
    """hidden widths; epochs of Adam at ``lr`` over minibatches of ``batch_size``; the share of
    images held out for the reported accuracy when no validation set is given; seed."""

    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    holdout: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be an int ≥ 1, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an int ≥ 1, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")


def _check_labels(labels: torch.Tensor, n: int, name: str) -> torch.Tensor:
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{name} must be (N,) with N = {n} images, got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if len(labels) and labels.min() < 0:
        raise ValueError(f"{name} must be ≥ 0, got a minimum of {int(labels.min())}")
    return labels.long()


def fit_latent_classifier(
    aae: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    config: LatentClassifierConfig | None = None,
    progress: bool = False,
    *,
    latents: torch.Tensor | None = None,
) -> tuple[LatentClassifier, dict[str, Any]]:
    """Fit p(y | E(x)) on ``images`` (N, *image_shape) with ``labels`` (N,) in 0..C−1; report the
    accuracy on ``validation`` = (images, labels), else on a held-out share of ``images``.
    ``latents`` (N, d): the training latents themselves in place of E(images) (images=None)."""
    c = config or LatentClassifierConfig()
    if latents is not None:
        if not (isinstance(latents, torch.Tensor) and latents.ndim == 2):
            raise ValueError(f"latents must be a tensor (N, d), got {latents!r:.60}")
        images = latents
    labels = _check_labels(labels, len(images), "labels")
    if len(images) < 2:
        raise ValueError(f"images must hold at least 2 images, got {len(images)}")
    with evaluating(aae):
        z = encode_all(aae, images) if latents is None else latents.detach().float()
        y = labels.to(z.device)
        g = torch.Generator().manual_seed(c.seed)
        if validation is None:
            order = torch.randperm(len(z), generator=g).to(z.device)
            held = int(len(z) * c.holdout)
            z_val, y_val, z, y = z[order[:held]], y[order[:held]], z[order[held:]], y[order[held:]]
        else:
            val_images, val_labels = validation
            y_val = _check_labels(val_labels, len(val_images), "validation labels").to(z.device)
            z_val = encode_all(aae, val_images)
    num_classes = int(max(y.max(), y_val.max() if len(y_val) else 0)) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(c.seed)
        classifier = LatentClassifier(z.shape[1], num_classes, c.hidden).to(z.device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=c.lr)
    for _ in tqdm(range(c.epochs), disable=not progress, desc="latent classifier"):
        for idx in torch.randperm(len(z), generator=g).to(z.device).split(c.batch_size):
            loss = F.cross_entropy(classifier(z[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    classifier.eval().requires_grad_(False)
    with torch.no_grad():
        report = {
            "train_accuracy": float((classifier(z).argmax(1) == y).float().mean()),
            "validation_accuracy": (
                float((classifier(z_val).argmax(1) == y_val).float().mean())
                if len(z_val)
                else float("nan")
            ),
            "num_classes": num_classes,
        }
    return classifier, report


def save_latent_classifier(classifier: LatentClassifier, path: str | os.PathLike) -> Path:
    """Weights and architecture in one safetensors file, written atomically."""
    config = {
        "latent_dim": classifier.latent_dim,
        "num_classes": classifier.num_classes,
        "hidden": list(classifier.hidden),
    }
    return save_tensors(path, classifier.state_dict(), CHECKPOINT_FORMAT, config)


def load_latent_classifier(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> LatentClassifier:
    """:func:`save_latent_classifier`'s file, shapes checked against its config first."""

    def factory(c: dict[str, Any]) -> LatentClassifier:
        return LatentClassifier(c["latent_dim"], c["num_classes"], tuple(c["hidden"]))

    return build_checked(factory, path, CHECKPOINT_FORMAT, device).eval().requires_grad_(False)
