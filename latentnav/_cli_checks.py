"""Checks of the command line's options and inputs, run before any work starts: a bad value,
an unusable device or an unwritable output folder is a :class:`UsageError` (exit status 2)."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

__all__ = ["UsageError", "USER_ERRORS", "check_accelerator", "check_device", "check_out"]


class UsageError(Exception):
    """A bad option value found before any work starts (exit status 2)."""


# What a user can cause: a missing or malformed file, a bad value, an unusable device or folder.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ValueError,
    TypeError,
    KeyError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
)


def check_accelerator(name: str) -> None:
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator, XLAAccelerator

    available = {
        "cpu": lambda: True,
        "cuda": CUDAAccelerator.is_available,
        "gpu": lambda: CUDAAccelerator.is_available() or MPSAccelerator.is_available(),
        "mps": MPSAccelerator.is_available,
        "tpu": XLAAccelerator.is_available,
    }
    if name == "auto":
        return
    if name not in available:
        raise UsageError(f"--accelerator must be one of auto, {', '.join(available)}, got {name!r}")
    if not available[name]():
        raise UsageError(f"--accelerator {name}: no such device is available here; use cpu or auto")


def check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"--device {name!r} is not a torch device: {err}") from err
    if device.type == "cuda" and not (
        torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    ):
        raise UsageError(f"--device {name}: no such CUDA device is available here; use cpu")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda[:N], got {name!r}")


def check_out(out: str) -> None:
    """``--out`` must be a folder, or creatable, and writable: checked before any work starts."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {out}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write in {probe} ({err.strerror or err})") from err
