"""A navigated path: latent points and what the method measured along them (DESIGN.md §3, step 4).

``z: (B, T + 1, d)``; ``records`` maps names to per-point ``(B, T + 1)`` or per-pair ``(B,)``
tensors, only those the method measured (e.g. ``"d_score"``, ``"corrections"``, ``"accepted"`` for
the stepwise navigator; ``"energy"``, ``"iterations"`` for the path optimiser); ``method`` and
``config`` are plain data (JSON-able), so this module imports no method.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from latentnav.checkpoint import CheckpointError, load_tensors, save_tensors

__all__ = ["LatentPath", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "latentnav.path/2"
_PREFIX = "record."


@dataclass
class LatentPath:
    """z: (B, T + 1, d); records: name → (B, T + 1) or (B,); method name; config (plain data)."""

    z: torch.Tensor
    records: dict[str, torch.Tensor] = field(default_factory=dict)
    method: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.z, torch.Tensor) or self.z.ndim != 3:
            shape = tuple(self.z.shape) if isinstance(self.z, torch.Tensor) else type(self.z)
            raise ValueError(f"z must be a tensor of shape (B, T + 1, d), got {shape}")
        if not isinstance(self.records, dict):
            raise TypeError(f"records must be a dict of tensors, got {type(self.records).__name__}")
        for name, value in self.records.items():
            _check_record(name, value, self.z.shape[:2])
        self.config = dict(self.config or {})

    # -- shape and records ------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.z.shape[0]

    @property
    def steps(self) -> int:
        return self.z.shape[1] - 1

    def record(self, name: str) -> torch.Tensor:
        """The record ``name``; a clear error when the method did not measure it."""
        if name not in self.records:
            raise AttributeError(
                f"this path (method {self.method or 'unknown'!r}) has no record {name!r}; it "
                f"recorded {sorted(self.records) or 'nothing'}"
            )
        return self.records[name]

    @property
    def d_score(self) -> torch.Tensor:
        """(B, T + 1): D = σ(ℓ) of the compass at every point."""
        return self.record("d_score")

    @property
    def corrections(self) -> torch.Tensor:
        """(B, T + 1) int64: corrections spent at every point (stepwise navigator)."""
        return self.record("corrections")

    @property
    def accepted(self) -> torch.Tensor:
        """(B, T + 1) bool: |D − 0.5| < ε at every point."""
        return self.record("accepted")

    @property
    def flagged(self) -> torch.Tensor:
        """(B,) bool: pairs with an interior point left outside the band (endpoints are exact and
        never corrected, so they do not count)."""
        return ~self.accepted[:, 1:-1].all(1)

    # -- use ----------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, aae: torch.nn.Module, batch_size: int = 4096) -> torch.Tensor:
        """Frames (B, T + 1, *image_shape) decoded by ``aae`` in batches."""
        flat = self.z.flatten(0, 1)
        frames = torch.cat([aae.decoder(chunk) for chunk in flat.split(batch_size)])
        return frames.view(*self.z.shape[:2], *frames.shape[1:])

    def report(self, aae: torch.nn.Module, **kwargs: Any):
        """:class:`~latentnav.metrics.PathReport` of the decoded frames, with latents, the D scores
        and band ε when recorded, and the path's own endpoints as targets; ``kwargs`` go to
        ``PathReport.from_paths`` (``detector``, ``classifier``, ``floor``, ``target_images``)."""
        from latentnav.metrics import PathReport

        kwargs.setdefault("target_latents", self.z[:, -1])
        if "eps" in self.config:
            kwargs.setdefault("eps", self.config["eps"])
        kwargs.setdefault("scores", self.records.get("d_score"))
        return PathReport.from_paths(self.decode(aae), latents=self.z, **kwargs)

    def to(self, device: str | torch.device) -> LatentPath:
        records = {k: v.to(device) for k, v in self.records.items()}
        return replace(self, z=self.z.to(device), records=records)

    def __getitem__(self, index: int | slice | torch.Tensor) -> LatentPath:
        """Select pairs: ``path[3]``, ``path[-1]``, ``path[:10]``, ``path[mask]`` (mask (B,) bool),
        ``path[indices]`` (int64); always a LatentPath with a batch dimension."""
        if isinstance(index, int) and not isinstance(index, bool):
            if not -self.batch_size <= index < self.batch_size:
                raise IndexError(f"pair {index} out of range for a batch of {self.batch_size}")
            index = slice(index % self.batch_size, index % self.batch_size + 1)
        elif isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            if index.shape != (self.batch_size,):
                raise IndexError(
                    f"a bool mask must have shape ({self.batch_size},), got {tuple(index.shape)}"
                )
        elif not isinstance(index, slice | torch.Tensor):
            raise TypeError(f"index must be an int, slice or tensor, got {type(index).__name__}")
        records = {k: v[index] for k, v in self.records.items()}
        return replace(self, z=self.z[index], records=records)

    @classmethod
    def cat(cls, parts: list[LatentPath]) -> LatentPath:
        """Concatenate pairs of paths with the same records, method and config."""
        if not parts:
            raise ValueError("parts must hold at least one LatentPath")
        first = parts[0]
        for p in parts[1:]:
            if set(p.records) != set(first.records) or p.method != first.method:
                raise ValueError(
                    f"cannot concatenate paths of method {p.method!r} with records "
                    f"{sorted(p.records)} onto {first.method!r} with {sorted(first.records)}"
                )
        if len(parts) == 1:
            return replace(first)
        records = {k: torch.cat([p.records[k] for p in parts]) for k in first.records}
        return replace(first, z=torch.cat([p.z for p in parts]), records=records)

    # -- disk -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """z, the records, method and config in one safetensors file, written atomically."""
        tensors = {"z": self.z}
        bools = sorted(k for k, v in self.records.items() if v.dtype == torch.bool)
        for name, value in self.records.items():
            tensors[_PREFIX + name] = value.to(torch.uint8) if name in bools else value
        meta = {"method": self.method, "config": self.config, "bool_records": bools}
        try:
            json.dumps(meta)
        except TypeError as err:
            raise TypeError(f"config must be plain JSON-able data to save: {err}") from err
        return save_tensors(path, tensors, CHECKPOINT_FORMAT, meta)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> LatentPath:
        tensors, meta = load_tensors(path, CHECKPOINT_FORMAT, device)
        if "z" not in tensors or tensors["z"].ndim != 3:
            raise CheckpointError(f"{path} holds no path z of shape (B, T + 1, d)")
        z = tensors.pop("z")
        records = {}
        for key, value in tensors.items():
            if not key.startswith(_PREFIX):
                raise CheckpointError(f"{path} holds an unexpected tensor {key!r}")
            name = key[len(_PREFIX) :]
            records[name] = value.bool() if name in meta.get("bool_records", []) else value
        try:
            return cls(z, records, meta.get("method", ""), meta.get("config") or {})
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err


def _check_record(name: str, value: object, leading: torch.Size) -> None:
    """A record is (B, T + 1) per point or (B,) per pair, matching z's leading dims."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"record {name!r} must be a tensor, got {type(value).__name__}")
    b, n = leading
    if tuple(value.shape) not in ((b, n), (b,)):
        raise ValueError(
            f"record {name!r} must have shape ({b}, {n}) per point or ({b},) per pair to match "
            f"z's leading dims, got {tuple(value.shape)}"
        )
