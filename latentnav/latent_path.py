"""The navigator's output: latent points and their compass record, one row per pair."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from latentnav.checkpoint import CheckpointError, load_tensors, save_tensors

__all__ = ["LatentPath", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "latentnav.path/1"
_TENSORS = ("z", "d_score", "corrections", "accepted")


@dataclass
class LatentPath:
    """z: (B, T + 1, d); d_score, corrections, accepted: (B, T + 1) (D, count, |D − 0.5| < ε)."""

    z: torch.Tensor
    d_score: torch.Tensor
    corrections: torch.Tensor
    accepted: torch.Tensor
    config: Any = None

    @property
    def batch_size(self) -> int:
        return self.z.shape[0]

    @property
    def steps(self) -> int:
        return self.z.shape[1] - 1

    @property
    def flagged(self) -> torch.Tensor:
        """(B,) bool: pairs with an interior point left outside the band after M corrections
        (the endpoints are exact and never corrected, so they do not count)."""
        return ~self.accepted[:, 1:-1].all(1)

    @torch.no_grad()
    def decode(self, aae: torch.nn.Module, batch_size: int = 4096) -> torch.Tensor:
        """Frames (B, T + 1, *image_shape) decoded by ``aae`` in batches."""
        flat = self.z.flatten(0, 1)
        frames = torch.cat([aae.decoder(chunk) for chunk in flat.split(batch_size)])
        return frames.view(*self.z.shape[:2], *frames.shape[1:])

    def report(self, aae: torch.nn.Module, **kwargs: Any):
        """:class:`~latentnav.metrics.PathReport` of the decoded frames, with latents, D scores,
        the band ε of the config and the path's own endpoints as targets; ``kwargs`` go to
        ``PathReport.from_paths`` (``detector``, ``classifier``, ``floor``, ``target_images``)."""
        from latentnav.metrics import PathReport

        kwargs.setdefault("target_latents", self.z[:, -1])
        if self.config is not None:
            kwargs.setdefault("eps", self.config.eps)
        return PathReport.from_paths(
            self.decode(aae), latents=self.z, scores=self.d_score, **kwargs
        )

    def to(self, device: str | torch.device) -> LatentPath:
        return replace(self, **{k: getattr(self, k).to(device) for k in _TENSORS})

    def __getitem__(self, index) -> LatentPath:
        """Select pairs: ``path[3]``, ``path[:10]``, ``path[mask]``."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return replace(self, **{k: getattr(self, k)[index] for k in _TENSORS})

    @classmethod
    def cat(cls, parts: list[LatentPath], config: Any = None) -> LatentPath:
        if len(parts) == 1:
            return replace(parts[0], config=config)
        return cls(
            **{k: torch.cat([getattr(p, k) for p in parts]) for k in _TENSORS}, config=config
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Tensors and the navigator config in one safetensors file, written atomically."""
        config = asdict(self.config) if self.config is not None else None
        tensors = {k: getattr(self, k) for k in _TENSORS}
        tensors["accepted"] = tensors["accepted"].to(torch.uint8)
        return save_tensors(path, tensors, CHECKPOINT_FORMAT, {"navigator": config})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> LatentPath:
        from latentnav.navigator import NavigatorConfig

        tensors, meta = load_tensors(path, CHECKPOINT_FORMAT, device)
        if set(tensors) != set(_TENSORS):
            raise CheckpointError(f"{path} holds tensors {sorted(tensors)}, expected {_TENSORS}")
        tensors["accepted"] = tensors["accepted"].bool()
        cfg = meta.get("navigator")
        known = {f.name for f in fields(NavigatorConfig)}
        config = NavigatorConfig(**{k: v for k, v in cfg.items() if k in known}) if cfg else None
        return cls(**tensors, config=config)
