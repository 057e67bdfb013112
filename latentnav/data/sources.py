"""Dataset sources: the embedded MNIST subset, full MNIST (.npz, IDX, torchvision), the generated
lines set, and specs."""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
import zlib
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np

from latentnav.data.images import ImageData, from_arrays, load_image_folder
from latentnav.data.lines import load_lines, parse_lines_spec

__all__ = [
    "MNIST_CLASSES",
    "SPLITS",
    "dataset_splits",
    "load_dataset",
    "load_embedded_mnist",
    "load_mnist",
    "read_idx",
]

SPLITS = ("train", "test")
MNIST_CLASSES = [str(i) for i in range(10)]
EMBEDDED_FILE = "mnist_subset.npz"
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_PREFIX = {"train": "train", "test": "t10k"}
ACCEPTED_SPECS = """accepted dataset specs:
  mnist-embedded          MNIST subset shipped with latentnav (800 train / 200 test per class)
  mnist:PATH              full MNIST: .npz (x_train, y_train, x_test, y_test) or IDX folder
  mnist:torchvision:ROOT  torchvision.datasets.MNIST stored under ROOT (needs torchvision)
  lines                   ACAI line segments at angle θ, generated (10000 train / 2000 test, 32×32)
  lines:KEY=VALUE,...     the same with size, width, train, test, bins, seed (e.g. lines:size=64)
  PATH.npz                keys x_train/y_train/x_test/y_test, or x (and optionally y) as train
  DIR                     image folder: one subfolder per class, or a flat folder of images"""


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally ``.gz``) into an array of the shape its header declares."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} is not a readable gzip file: {e}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file: bad magic number 0x{data[:4].hex()}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: header needs {header} bytes, file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path} is corrupt: header declares shape {dims} ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, split: str, kind: str) -> Path:
    stem = f"{_IDX_PREFIX[split]}-{kind}"
    ext = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
    for name in (f"{stem}-{ext}", f"{stem}.{ext}"):
        for suffix in ("", ".gz"):
            if (folder / (name + suffix)).is_file():
                return folder / (name + suffix)
    raise FileNotFoundError(f"MNIST IDX file not found: {folder / f'{stem}-{ext}'} (or .gz)")


def _load_idx_mnist(folder: Path, split: str) -> ImageData:
    images_path, labels_path = (
        _find_idx(folder, split, "images"),
        _find_idx(folder, split, "labels"),
    )
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 images (N, H, W), got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{labels_path}: expected {len(x)} labels (N,), got shape {y.shape}")
    return from_arrays(x, y, classes=list(MNIST_CLASSES))


def _open_npz(source: Path | IO[bytes], name: str) -> np.lib.npyio.NpzFile:
    try:
        return np.load(source, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"cannot read {name} as .npz: {e}") from e


def _load_npz(path: Path, split: str, classes: list[str] | None, mnist: bool) -> ImageData:
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    with _open_npz(path, str(path)) as z:
        keys = set(z.files)
        xk, yk = f"x_{split}", f"y_{split}"
        if xk in keys:
            return from_arrays(z[xk], z[yk] if yk in keys else None, classes)
        if not mnist and "x" in keys and split == "train" and not keys & {"x_train", "x_test"}:
            return from_arrays(z["x"], z["y"] if "y" in keys else None, classes)
    want = "x_train, y_train, x_test, y_test" if mnist else f"{xk} (and {yk}), or x (and y)"
    raise ValueError(f"{path} has no {split!r} split: expected keys {want}, found {sorted(keys)}")


def load_embedded_mnist(split: str = "train") -> ImageData:
    """The MNIST subset shipped in the package: 8000 train / 2000 test images ``(N, 1, 28, 28)``."""
    _check_split(split)
    ref = resources.files("latentnav.data").joinpath(EMBEDDED_FILE)
    if not ref.is_file():
        raise FileNotFoundError(
            f"embedded MNIST subset missing: {ref}; rebuild it with "
            "`python -m latentnav.data.make_subset /path/to/mnist.npz`"
        )
    with ref.open("rb") as f, _open_npz(f, str(ref)) as z:
        return from_arrays(z[f"x_{split}"], z[f"y_{split}"], classes=list(MNIST_CLASSES))


def load_mnist(path: str | os.PathLike | None = None, split: str = "train") -> ImageData:
    """MNIST ``(N, 1, 28, 28)`` from ``path``.

    ``path``: None (embedded subset), an ``.npz`` with keys x_train, y_train, x_test, y_test,
    a folder with the IDX files (``train-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, ...,
    optionally ``.gz``), or ``"torchvision:ROOT"`` for ``torchvision.datasets.MNIST(ROOT)``.
    """
    _check_split(split)
    if path is None:
        return load_embedded_mnist(split)
    if isinstance(path, str) and path.startswith("torchvision:"):
        return _load_torchvision_mnist(path.removeprefix("torchvision:"), split)
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"MNIST source not found: {p}")
    if p.is_dir():
        return _load_idx_mnist(p, split)
    return _load_npz(p, split, list(MNIST_CLASSES), mnist=True)


def _load_torchvision_mnist(root: str, split: str) -> ImageData:
    try:
        from torchvision.datasets import MNIST
    except ImportError as e:
        raise ImportError(
            "load_mnist('torchvision:ROOT') needs torchvision, which is not installed; "
            "pass an MNIST .npz file or a folder with the IDX files instead"
        ) from e
    try:
        ds = MNIST(root or ".", train=split == "train", download=False)
    except RuntimeError as e:
        raise FileNotFoundError(f"torchvision MNIST not found under {root!r}: {e}") from e
    return from_arrays(ds.data, ds.targets, classes=list(MNIST_CLASSES))


def _path_spec(spec: str) -> Path | None:
    p = Path(spec).expanduser()
    if p.exists():
        return p
    if spec.endswith(".npz") or os.sep in spec or (os.altsep and os.altsep in spec):
        raise FileNotFoundError(f"dataset not found: {p}\n{ACCEPTED_SPECS}")
    return None


def _is_lines(spec: str) -> bool:
    return spec == "lines" or spec.startswith("lines:")


def load_dataset(spec: str, split: str = "train") -> ImageData:
    """Load the ``split`` of the dataset named by ``spec`` (see ``ACCEPTED_SPECS``)."""
    _check_split(split)
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"dataset spec must be a non-empty string, got {spec!r}\n{ACCEPTED_SPECS}")
    if spec == "mnist-embedded":
        return load_embedded_mnist(split)
    if spec == "mnist":
        raise ValueError(
            "spec 'mnist' needs a source: 'mnist:/path/to/mnist.npz' (or an IDX folder), "
            f"or 'mnist-embedded' for the bundled subset\n{ACCEPTED_SPECS}"
        )
    if spec.startswith("mnist:"):
        return load_mnist(spec.removeprefix("mnist:"), split)
    if _is_lines(spec):
        return load_lines(split, parse_lines_spec(spec))
    p = _path_spec(spec)
    if p is None:
        raise ValueError(f"unknown dataset spec {spec!r}\n{ACCEPTED_SPECS}")
    if p.is_dir():
        if split != "train":
            raise ValueError(f"image folder {p} has only a 'train' split, got split={split!r}")
        return load_image_folder(p)
    return _load_npz(p, split, None, mnist=False)


def dataset_splits(spec: str) -> tuple[str, ...]:
    """The splits ``load_dataset(spec, split)`` can load, without loading the images."""
    if spec == "mnist-embedded" or spec.startswith("mnist:"):
        return SPLITS
    if _is_lines(spec):
        parse_lines_spec(spec)
        return SPLITS
    p = _path_spec(spec)
    if p is None:
        raise ValueError(f"unknown dataset spec {spec!r}\n{ACCEPTED_SPECS}")
    if p.is_dir():
        return ("train",)
    with _open_npz(p, str(p)) as z:
        found = tuple(s for s in SPLITS if f"x_{s}" in z.files)
    return found or ("train",)
