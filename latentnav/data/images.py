"""In-memory image sets: the ``ImageData`` container, array conversion and image folders."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["ImageData", "from_arrays", "load_image_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
_SMALL_C = (1, 3, 4)


@dataclass
class ImageData:
    """Images ``(N, C, H, W)`` float32 in [0, 1] and labels ``(N,)`` int64 (-1 = unlabeled)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.ndim != 4:
            shape = getattr(self.images, "shape", None)
            raise ValueError(f"images must be a tensor of shape (N, C, H, W), got shape {shape}")
        if self.images.dtype != torch.float32:
            raise TypeError(f"images must be float32 in [0, 1], got dtype {self.images.dtype}")
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64:
            raise TypeError(
                f"labels must be an int64 tensor, got {getattr(self.labels, 'dtype', None)}"
            )
        n = len(self.images)
        if self.labels.shape != (n,):
            raise ValueError(
                f"labels must have shape (N,) = ({n},), got {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, idx: Sequence[int] | torch.Tensor | np.ndarray | slice) -> ImageData:
        """The items at ``idx`` (indices, boolean mask or slice); ``classes`` is kept."""
        if not isinstance(idx, slice):
            idx = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
            if idx.dtype != torch.bool:
                idx = idx.long().reshape(-1)
        return ImageData(self.images[idx], self.labels[idx], self.classes)


def _to_numpy(a: object, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    if isinstance(a, np.ndarray):
        return a
    raise TypeError(f"{name} must be a numpy array or torch.Tensor, got {type(a).__name__}")


def _to_nchw(x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise ValueError(
            f"x must have shape (N, H, W), (N, C, H, W) or (N, H, W, C), got {tuple(x.shape)}"
        )
    if x.shape[-1] in _SMALL_C and x.shape[1] not in _SMALL_C:
        return x.transpose(0, 3, 1, 2)
    if x.shape[1] in _SMALL_C:
        return x
    raise ValueError(
        f"x has shape {tuple(x.shape)}: cannot find a channel axis with C in {{1, 3, 4}} "
        "at position 1 (N, C, H, W) or last (N, H, W, C)"
    )


def from_arrays(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | Sequence[int] | None = None,
    classes: list[str] | None = None,
) -> ImageData:
    """Wrap arrays as ``ImageData``.

    ``x`` layouts: ``(N, H, W)`` (C = 1); ``(N, H, W, C)`` when the last axis is in {1, 3, 4}
    and axis 1 is not; otherwise ``(N, C, H, W)`` with C in {1, 3, 4}. uint8 is divided by 255;
    other dtypes must already lie in [0, 1]. ``y: (N,)`` integer labels, or None for all -1.
    """
    xa = _to_numpy(x, "x")
    if xa.shape[:1] == (0,) or xa.size == 0:
        raise ValueError(f"x is empty (shape {tuple(xa.shape)}); need at least one image")
    xa = _to_nchw(xa)
    if xa.dtype == np.uint8:
        xf = xa.astype(np.float32)
        xf /= 255.0
    elif xa.dtype == np.bool_ or np.issubdtype(xa.dtype, np.number):
        if np.issubdtype(xa.dtype, np.complexfloating):
            raise TypeError(f"x must be real-valued, got dtype {xa.dtype}")
        xf = xa.astype(np.float32)
        finite = np.isfinite(xf)
        if not finite.all():
            raise ValueError(f"x contains {int((~finite).sum())} non-finite value(s) (NaN or Inf)")
        lo, hi = float(xf.min()), float(xf.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"x (dtype {xa.dtype}) must lie in [0, 1], observed range [{lo:g}, {hi:g}]; "
                "pass uint8 for 0..255 data or rescale"
            )
    else:
        raise TypeError(f"x must have a numeric dtype, got {xa.dtype}")
    n = xf.shape[0]
    if y is None:
        labels = torch.full((n,), -1, dtype=torch.int64)
    else:
        ya = np.asarray(_to_numpy(y, "y") if isinstance(y, torch.Tensor) else y)
        if ya.ndim != 1 or ya.shape[0] != n:
            raise ValueError(f"y must have shape (N,) = ({n},) to match x, got {tuple(ya.shape)}")
        if not (np.issubdtype(ya.dtype, np.integer) or ya.dtype == np.bool_):
            if not (np.issubdtype(ya.dtype, np.floating) and np.all(ya == np.round(ya))):
                raise TypeError(f"y must hold integer labels, got dtype {ya.dtype}")
        labels = torch.from_numpy(ya.astype(np.int64))
    return ImageData(torch.from_numpy(np.ascontiguousarray(xf)), labels, classes)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _read_image(path: Path, grayscale: bool, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            if im.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit greyscale
                a = np.asarray(im, dtype=np.float32) / 65535.0
                a = np.clip(a, 0.0, 1.0)
                return a[None] if grayscale else np.repeat(a[None], 3, axis=0)
            a = np.asarray(im.convert("L" if grayscale else "RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    return a[None] if grayscale else a.transpose(2, 0, 1)


def load_image_folder(
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
    grayscale: bool | None = None,
) -> ImageData:
    """Load a folder of class subfolders (labels from sorted names) or a flat folder (labels -1).

    ``size = (H, W)`` resizes every image; without it all images must share one size.
    ``grayscale=None`` gives C = 1 when every image is greyscale, else C = 3 (RGB).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"image folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"image folder must be a directory, got file: {root}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (H, W) with positive ints, got {size}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    top = _image_files(root)
    if subdirs and top:
        raise ValueError(
            f"{root} mixes images ({top[0].name}, ...) with class subfolders "
            f"({subdirs[0].name}, ...); use one layout"
        )
    classes: list[str] | None = [d.name for d in subdirs] if subdirs else None
    files: list[tuple[Path, int]] = (
        [(f, i) for i, d in enumerate(subdirs) for f in _image_files(d)]
        if subdirs
        else [(f, -1) for f in top]
    )
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {root}")

    if grayscale is None or size is None:
        first_size = None
        all_grey = True
        for f, _ in files:
            try:
                with Image.open(f) as im:
                    mode, im_size = im.mode, im.size
            except (UnidentifiedImageError, OSError) as e:
                raise ValueError(f"cannot read image {f}: {e}") from e
            all_grey &= mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
            first_size = first_size or im_size
            if size is None and im_size != first_size:
                raise ValueError(
                    f"image {f} is {im_size[0]}x{im_size[1]} (WxH) but {files[0][0]} is "
                    f"{first_size[0]}x{first_size[1]}; pass size=(H, W) to resize"
                )
        if grayscale is None:
            grayscale = all_grey
    arrays = [_read_image(f, grayscale, size) for f, _ in files]
    images = torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))
    labels = torch.tensor([lab for _, lab in files], dtype=torch.int64)
    return ImageData(images, labels, classes)
