"""Rebuild the embedded MNIST subset.

Usage: ``python -m latentnav.data.make_subset /path/to/mnist.npz [--out FILE] [--seed S]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["make_subset", "main"]

DEFAULT_OUT = Path(__file__).with_name("mnist_subset.npz")


def _sample(y: np.ndarray, per_class: int, rng: np.random.Generator, split: str) -> np.ndarray:
    chosen = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        if len(idx) < per_class:
            raise ValueError(f"y_{split} has only {len(idx)} images of class {c}, need {per_class}")
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def make_subset(
    src: str | os.PathLike,
    dst: str | os.PathLike = DEFAULT_OUT,
    n_train: int = 800,
    n_test: int = 200,
    seed: int = 0,
) -> Path:
    """Write a class-balanced subset of MNIST ``src`` (``n_train``/``n_test`` per class) to ``dst``.

    Indices are drawn per class without replacement from ``np.random.default_rng(seed)``
    (train classes 0..9, then test classes 0..9) and kept in their original MNIST order.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"MNIST .npz not found: {src}")
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    with np.load(src, allow_pickle=False) as z:
        for split, n in (("train", n_train), ("test", n_test)):
            x, y = z[f"x_{split}"], z[f"y_{split}"]
            if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or len(y) != len(x):
                raise ValueError(f"{src}: x_{split} must be uint8 (N, 28, 28) with N labels")
            keep = _sample(y, n, rng, split)
            out[f"x_{split}"] = np.ascontiguousarray(x[keep])
            out[f"y_{split}"] = y[keep].astype(np.uint8)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **out)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the packaged file must be world-readable
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src", help="MNIST .npz with keys x_train, y_train, x_test, y_test")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output .npz (default: packaged file)")
    ap.add_argument("--train-per-class", type=int, default=800)
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    dst = make_subset(a.src, a.out, a.train_per_class, a.test_per_class, a.seed)
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
