"""Weights on disk: safetensors files with a JSON header, written atomically, read without pickle.

A checkpoint is one ``.safetensors`` file whose metadata holds ``format`` (what kind of object it
is) and ``config`` (JSON, enough to rebuild the modules before loading the tensors). Nothing in the
file is executed on load, and :func:`build_checked` compares the header's tensor shapes with a
skeleton of the module built on the meta device before anything of the file's size is allocated.

Writes go to a temp file in the target's folder, which is flushed, fsynced, given the permissions
of the umask and renamed over the target; a failed write leaves the previous file intact and no
temp file behind (a writer killed with SIGKILL can leave a ``.NAME.*.tmp`` file, never a torn
target).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

__all__ = [
    "CheckpointError",
    "checkpoint_format",
    "save_tensors",
    "load_tensors",
    "read_header",
    "build_checked",
    "check_fits",
    "load_into",
    "atomic_path",
]

TensorSpec = tuple[tuple[int, ...], str]  # (shape, safetensors dtype name such as "F32")

_DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, of another kind, or does not fit the model."""


def _umask() -> int:
    """The process umask, read from /proc without changing it where possible."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it: restore at once
    os.umask(mask)
    return mask


def _check_target(path: Path) -> None:
    """Refuse to replace anything but a regular file (symlinks are followed)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    what = {
        stat.S_IFDIR: "a directory",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFSOCK: "a socket",
    }.get(stat.S_IFMT(mode), "not a regular file")
    link = " (through a symlink)" if path.is_symlink() else ""
    raise FileExistsError(f"{path} is {what}{link}, not a regular file; refusing to replace it")


def _fsync(path: Path, directory: bool = False) -> None:
    if directory and os.name == "nt":
        return  # Windows cannot open a folder for fsync
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    if os.name == "nt":
        flags = os.O_RDWR
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems refuse fsync on folders; files must succeed
            raise
    finally:
        os.close(fd)


class atomic_path:
    """Yields a temp path beside ``path``, renamed onto ``path`` only on success.

    On exit without error the temp file is fsynced, chmod-ed to ``0o666 & ~umask`` and renamed
    over ``path``, then the folder is fsynced; on any error, the rename's included, it is removed.
    ``path`` must be a regular file (or a symlink to one) if it exists.
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ""):
        self.path = Path(path)
        self.suffix = suffix or self.path.suffix

    def __enter__(self) -> Path:
        _check_target(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=self.suffix + ".tmp", dir=self.path.parent
        )
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        try:
            _fsync(self.tmp)
            os.chmod(self.tmp, 0o666 & ~_umask())
            _check_target(self.path)  # again: it may have changed while we wrote
            os.replace(self.tmp, self.path)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        _fsync(self.path.parent, directory=True)


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], kind: str, config: dict[str, Any]
) -> Path:
    """Write ``tensors`` and ``{format: kind, config: json}`` to ``path`` atomically."""
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {"format": kind, "config": json.dumps(config)}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=meta)
    return Path(path)


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(f"{path} is not a readable safetensors checkpoint: {err}")


def checkpoint_format(path: str | os.PathLike) -> str:
    """The ``format`` a latentnav safetensors file declares (e.g. "latentnav.aae/1")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format", "unknown")
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise _unreadable(path, err) from err


def read_header(path: str | os.PathLike, kind: str) -> tuple[dict[str, TensorSpec], dict[str, Any]]:
    """``({key: (shape, dtype name)}, config)`` of a ``kind`` checkpoint, without tensor data."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            specs = {}
            for key in f.keys():
                tensor_slice = f.get_slice(key)
                specs[key] = (tuple(tensor_slice.get_shape()), tensor_slice.get_dtype())
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise _unreadable(path, err) from err
    if meta.get("format") != kind:
        raise CheckpointError(
            f"{path} holds a {meta.get('format', 'unknown')!r} checkpoint, expected {kind!r}"
        )
    try:
        config = json.loads(meta["config"])
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} has no valid config in its metadata: {err}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} has a config of type {type(config).__name__}, not an object")
    return specs, config


def load_tensors(
    path: str | os.PathLike, kind: str, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_tensors`; check that it holds a ``kind`` checkpoint."""
    _, config = read_header(path, kind)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise _unreadable(Path(path), err) from err
    return tensors, config


def _specs(tensors: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    return {
        k: (tuple(v.shape), _DTYPE_NAMES.get(v.dtype, str(v.dtype))) for k, v in tensors.items()
    }


def check_fits(
    expected: Mapping[str, TensorSpec], found: Mapping[str, TensorSpec], path: str | os.PathLike
) -> None:
    """Raise a CheckpointError naming the first key whose presence, shape or dtype differs."""
    for key in sorted(set(expected) | set(found)):
        if key not in found:
            problem = f"missing tensor {key!r} (model expects shape {expected[key][0]})"
        elif key not in expected:
            problem = f"unexpected tensor {key!r} of shape {found[key][0]}"
        elif found[key][0] != expected[key][0]:
            problem = f"shape mismatch at {key!r}: {found[key][0]} vs {expected[key][0]} expected"
        elif found[key][1] != expected[key][1]:
            problem = f"dtype mismatch at {key!r}: {found[key][1]} vs {expected[key][1]} expected"
        else:
            continue
        raise CheckpointError(f"{path} does not fit the model: {problem}")


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """``module.load_state_dict(tensors)`` after :func:`check_fits` on their shapes and dtypes."""
    check_fits(_specs(module.state_dict()), _specs(tensors), path)
    module.load_state_dict(tensors)


def build_checked(
    factory: Callable[[dict[str, Any]], torch.nn.Module],
    path: str | os.PathLike,
    kind: str,
    device: str | torch.device = "cpu",
    prefix: str = "",
) -> torch.nn.Module:
    """``factory(config)`` loaded with the tensors of a ``kind`` checkpoint, checked first.

    The module is built once on the meta device (no memory) and its state-dict keys, shapes and
    dtypes are compared with the file's header (only the keys starting with ``prefix``, which is
    stripped, e.g. ``"aae."`` in a bundle); only a file that fits is built for real (global RNG
    untouched) and read. Returns the module on ``device``, in the mode ``factory`` left it.
    """
    path = Path(path)
    specs, config = read_header(path, kind)
    specs = {k[len(prefix) :]: v for k, v in specs.items() if k.startswith(prefix)}
    try:
        with torch.device("meta"):
            skeleton = factory(config)
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, IndexError) as err:
        raise CheckpointError(f"{path} has an invalid {kind} config: {err}") from err
    check_fits(_specs(skeleton.state_dict()), specs, path)
    del skeleton
    with torch.random.fork_rng(devices=[]):
        module = factory(config)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(prefix + k) for k in specs}
    except (SafetensorError, OSError, RuntimeError) as err:
        raise _unreadable(path, err) from err
    module.load_state_dict(tensors)
    return module.to(device)
