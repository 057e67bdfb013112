"""Weights on disk: safetensors files with a JSON header, written atomically, read without pickle.

A checkpoint is one ``.safetensors`` file whose metadata holds ``format`` (what kind of object it
is) and ``config`` (JSON, enough to rebuild the modules before loading the tensors). Nothing in the
file is executed on load.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

__all__ = ["CheckpointError", "save_tensors", "load_tensors", "atomic_path"]


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, of another kind, or does not fit the model."""


class atomic_path:
    """Yields a temp path beside ``path``, renamed onto ``path`` only on success."""

    def __init__(self, path: str | os.PathLike, suffix: str = ""):
        self.path = Path(path)
        self.suffix = suffix or self.path.suffix

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=self.suffix + ".tmp", dir=self.path.parent
        )
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], kind: str, config: dict[str, Any]
) -> Path:
    """Write ``tensors`` and ``{format: kind, config: json}`` to ``path`` atomically."""
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {"format": kind, "config": json.dumps(config)}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=meta)
    return Path(path)


def load_tensors(
    path: str | os.PathLike, kind: str, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_tensors`; check that it holds a ``kind`` checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {err}") from err
    if meta.get("format") != kind:
        raise CheckpointError(
            f"{path} holds a {meta.get('format', 'unknown')!r} checkpoint, expected {kind!r}"
        )
    try:
        config = json.loads(meta["config"])
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} has no valid config in its metadata: {err}") from err
    return tensors, config


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """``module.load_state_dict(tensors)`` with an error that lists the keys that do not fit."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if wrong:
            parts.append(
                "shape mismatch "
                + ", ".join(
                    f"{k}: {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:5]
                )
            )
        raise CheckpointError(f"{path} does not fit the model: " + "; ".join(parts))
    module.load_state_dict(tensors)
