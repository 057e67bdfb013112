"""Tests for latentnav.data: embedded MNIST, file loaders, from_arrays and the data module."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentnav.data import (
    ImageData,
    ImageDataModule,
    dataset_splits,
    from_arrays,
    load_dataset,
    load_embedded_mnist,
    load_image_folder,
    load_mnist,
    read_idx,
)
from latentnav.data.make_subset import make_subset

RNG = np.random.default_rng(0)
SPLITS = ("train", "test")


def _mnist_like(n: int, h: int = 6, w: int = 5) -> tuple[np.ndarray, np.ndarray]:
    x = RNG.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    return x, y


def _write_idx(path: Path, a: np.ndarray, gz: bool = False) -> Path:
    code = {np.uint8: 0x08, np.int32: 0x0C}[a.dtype.type]
    raw = struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    raw += a.astype(a.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


# --- embedded MNIST ------------------------------------------------------------------------


def test_embedded_mnist_shapes_range_balance() -> None:
    for split, n in (("train", 800), ("test", 200)):
        d = load_embedded_mnist(split)
        assert d.images.shape == (10 * n, 1, 28, 28) and d.image_shape == (1, 28, 28)
        assert d.images.dtype == torch.float32 and d.labels.dtype == torch.int64
        assert 0.0 <= d.images.min() and d.images.max() <= 1.0 and d.images.max() > 0.99
        assert torch.bincount(d.labels, minlength=10).tolist() == [n] * 10
        assert d.classes == [str(i) for i in range(10)]
    assert torch.equal(load_mnist().images, load_dataset("mnist-embedded").images)
    assert dataset_splits("mnist-embedded") == ("train", "test")
    size = (Path(__file__).parents[1] / "latentnav/data/mnist_subset.npz").stat().st_size
    assert size < 3_000_000
    with pytest.raises(ValueError, match="split"):
        load_embedded_mnist("val")


SHARED_MNIST = Path(__file__).parents[1] / ".." / "shared" / "data" / "mnist.npz"


@pytest.mark.skipif(not SHARED_MNIST.is_file(), reason="full MNIST .npz not available")
def test_packaged_subset_is_reproducible(tmp_path: Path) -> None:
    rebuilt = np.load(make_subset(SHARED_MNIST, tmp_path / "s.npz"))
    packaged = load_embedded_mnist("test")
    assert np.array_equal(rebuilt["y_test"], packaged.labels.numpy())
    assert torch.equal(torch.from_numpy(rebuilt["x_test"]).float().div(255), packaged.images[:, 0])


def test_make_subset_balanced_deterministic_atomic(tmp_path: Path) -> None:
    x, y = _mnist_like(300, 28, 28)
    src = tmp_path / "src.npz"
    np.savez(src, x_train=x, y_train=y, x_test=x[:100], y_test=y[:100])
    a = make_subset(src, tmp_path / "a.npz", n_train=5, n_test=2, seed=3)
    b = make_subset(src, tmp_path / "b.npz", n_train=5, n_test=2, seed=3)
    za, zb = np.load(a), np.load(b)
    assert np.bincount(za["y_train"]).tolist() == [5] * 10 and za["x_test"].shape == (20, 28, 28)
    assert all(np.array_equal(za[k], zb[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "src.npz"]
    with pytest.raises(ValueError, match="class"):
        make_subset(src, tmp_path / "c.npz", n_train=31)
    assert not (tmp_path / "c.npz").exists()


# --- npz and IDX -----------------------------------------------------------------------------


def test_npz_round_trip(tmp_path: Path) -> None:
    x, y = _mnist_like(20)
    path = tmp_path / "m.npz"
    np.savez_compressed(path, x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    d = load_mnist(path, "train")
    assert torch.allclose(d.images[:, 0], torch.from_numpy(x).float() / 255)
    assert d.labels.tolist() == y.tolist()
    assert len(load_dataset(f"mnist:{path}", "test")) == 4
    assert len(load_dataset(str(path), "test")) == 4 and dataset_splits(str(path)) == SPLITS

    flat = tmp_path / "flat.npz"
    np.savez(flat, x=x[..., None])  # (N, H, W, 1), unlabeled
    d = load_dataset(str(flat))
    assert d.images.shape == (20, 1, 6, 5) and (d.labels == -1).all()
    assert dataset_splits(str(flat)) == ("train",)
    with pytest.raises(ValueError, match="'test' split"):
        load_dataset(str(flat), "test")
    with pytest.raises(ValueError, match="x_train"):
        load_mnist(flat)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    sfx = ".gz" if gz else ""
    x, y = _mnist_like(12)
    _write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", x, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", y, gz)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", x[:3], gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", y[:3], gz)
    d = load_mnist(tmp_path)
    assert torch.allclose(d.images[:, 0], torch.from_numpy(x).float() / 255)
    assert d.labels.tolist() == y.tolist()
    assert len(load_dataset(f"mnist:{tmp_path}", "test")) == 3
    ints = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    assert np.array_equal(read_idx(_write_idx(tmp_path / f"ints{sfx}", ints, gz)), ints)


def test_corrupt_idx_raises(tmp_path: Path) -> None:
    x, y = _mnist_like(12)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", y)
    img = _write_idx(tmp_path / "train-images-idx3-ubyte", x)
    img.write_bytes(img.read_bytes()[:-7])  # truncated
    with pytest.raises(ValueError, match="corrupt"):
        load_mnist(tmp_path)
    img.write_bytes(b"\x12\x34\x08\x03" + img.read_bytes()[4:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(img)
    bad_gz = tmp_path / "x.gz"
    bad_gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abcde")[:-9])
    with pytest.raises(ValueError, match="x.gz"):
        read_idx(bad_gz)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "test")


def test_missing_files_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "mnist.npz"
    for call in (
        lambda: load_mnist(missing),
        lambda: load_dataset(str(missing)),
        lambda: load_dataset(f"mnist:{missing}"),
        lambda: load_image_folder(missing.parent),
    ):
        with pytest.raises(FileNotFoundError, match="nope"):
            call()


def test_bad_specs_list_accepted_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in ("cifar10", "mnist", ""):
        with pytest.raises(ValueError, match="accepted dataset specs"):
            load_dataset(spec)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match="IDX"):
        load_mnist("torchvision:/tmp/root")


# --- image folders ---------------------------------------------------------------------------


def _png(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def test_image_folder_classes_and_resize(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, size=(5, 8, 6), dtype=np.uint8)
    for i, a in enumerate(grey):
        _png(tmp_path / ("cat" if i < 3 else "ant") / f"{i}.png", a)
    d = load_image_folder(tmp_path)
    assert d.classes == ["ant", "cat"] and d.labels.tolist() == [0, 0, 1, 1, 1]
    assert d.images.shape == (5, 1, 8, 6)
    assert torch.allclose(d.images[0, 0], torch.from_numpy(grey[3]).float() / 255)
    assert load_image_folder(tmp_path, grayscale=False).images.shape == (5, 3, 8, 6)
    assert torch.equal(load_dataset(str(tmp_path)).labels, d.labels)

    _png(tmp_path / "cat" / "9_big.png", np.zeros((10, 6), np.uint8))
    with pytest.raises(ValueError, match="9_big.png"):
        load_image_folder(tmp_path)
    d = load_image_folder(tmp_path, size=(4, 3))
    assert d.images.shape == (6, 1, 4, 3) and d.images.dtype == torch.float32


def test_flat_rgb_folder(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, size=(3, 4, 5, 3), dtype=np.uint8)
    for i, a in enumerate(rgb):
        _png(tmp_path / "flat" / f"{i}.png", a)
    (tmp_path / "flat" / "notes.txt").write_text("ignored")
    d = load_image_folder(tmp_path / "flat")
    assert d.classes is None and (d.labels == -1).all() and d.images.shape == (3, 3, 4, 5)
    assert torch.allclose(d.images[1], torch.from_numpy(rgb[1]).permute(2, 0, 1).float() / 255)
    assert load_image_folder(tmp_path / "flat", grayscale=True).image_shape == (1, 4, 5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(tmp_path / "empty")
    _png(tmp_path / "a.png", rgb[0])  # images next to class subfolders
    with pytest.raises(ValueError, match="mixes"):
        load_image_folder(tmp_path)


# --- from_arrays -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((4, 7, 6), (4, 1, 7, 6)),
        ((4, 1, 7, 6), (4, 1, 7, 6)),
        ((4, 3, 7, 6), (4, 3, 7, 6)),
        ((4, 7, 6, 3), (4, 3, 7, 6)),
        ((4, 7, 6, 1), (4, 1, 7, 6)),
        ((4, 7, 6, 4), (4, 4, 7, 6)),
    ],
)
def test_from_arrays_layouts(shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    x = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    d = from_arrays(x)
    assert d.images.shape == expected and d.images.dtype == torch.float32
    assert (d.labels == -1).all() and d.labels.dtype == torch.int64
    ref = torch.from_numpy(x).float() / 255
    if len(shape) == 3:
        ref = ref[:, None]
    elif shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        ref = ref.permute(0, 3, 1, 2)
    assert torch.allclose(d.images, ref)
    t = from_arrays(torch.from_numpy(x).double() / 255, torch.arange(4))
    assert torch.allclose(t.images, d.images) and t.labels.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("x", "y", "err", "match"),
    [
        (np.full((2, 4, 4), 1.5), None, ValueError, r"x .*\[0, 1\].*1\.5"),
        (np.full((2, 4, 4), -0.25), None, ValueError, r"-0\.25"),
        (np.array([[[np.nan]]]), None, ValueError, "NaN"),
        (np.full((1, 2, 2), np.inf), None, ValueError, "non-finite"),
        (np.zeros((0, 4, 4), np.uint8), None, ValueError, "empty"),
        (np.zeros((3, 4, 4), np.uint8), np.zeros(2, np.int64), ValueError, "y must have"),
        (np.zeros((3, 4, 4), np.uint8), np.full(3, 0.5), TypeError, "integer"),
        (np.zeros((3, 5, 6, 7), np.uint8), None, ValueError, "channel"),
        (np.zeros((3, 4), np.uint8), None, ValueError, r"\(N, H, W\)"),
        ([[[0]]], None, TypeError, "numpy"),
    ],
)
def test_from_arrays_errors(x: object, y: object, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        from_arrays(x, y)  # type: ignore[arg-type]


def test_image_data_subset_and_checks() -> None:
    d = from_arrays(np.zeros((5, 2, 2), np.uint8), np.arange(5), classes=list("abcde"))
    s = d.subset([4, 1])
    assert s.labels.tolist() == [4, 1] and s.classes == d.classes and len(s) == 2
    assert d.subset(d.labels > 2).labels.tolist() == [3, 4]
    assert len(d.subset(slice(1, 3))) == 2
    with pytest.raises(TypeError, match="float32"):
        ImageData(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        ImageData(torch.zeros(2, 1, 2, 2), torch.zeros(3, dtype=torch.int64))


# --- data module -----------------------------------------------------------------------------


def _indexed(n: int) -> ImageData:
    return from_arrays(np.zeros((n, 3, 3), np.uint8), np.arange(n))


def _split_ids(dm: ImageDataModule) -> tuple[set[int], set[int], set[int]]:
    dm.setup()
    return tuple(set(d.labels.tolist()) for d in (dm.train_data, dm.val_data, dm.test_data))


def test_datamodule_splits_disjoint_and_seeded() -> None:
    train, test = _indexed(100), _indexed(7)
    tr, va, te = _split_ids(ImageDataModule(train, test, val_fraction=0.2, seed=1))
    assert len(va) == 20 and not tr & va and tr | va == set(range(100)) and te == set(range(7))
    tr, va, te = _split_ids(ImageDataModule(train, None, val_fraction=0.1, seed=1))
    assert len(va) == len(te) == 10 and len(tr) == 80 and tr | va | te == set(range(100))
    assert not (tr & va or tr & te or va & te)
    same = _split_ids(ImageDataModule(train, None, val_fraction=0.1, seed=1))
    other = _split_ids(ImageDataModule(train, None, val_fraction=0.1, seed=2))
    assert same == (tr, va, te) and other != same


def test_datamodule_loaders_tuples_and_seeded_shuffle() -> None:
    def first_epoch(seed: int) -> list[int]:
        dm = ImageDataModule(_indexed(50), batch_size=8, val_fraction=0.2, seed=seed)
        return [i for _, y in dm.train_dataloader() for i in y.tolist()]

    dm = ImageDataModule(_indexed(50), batch_size=8, val_fraction=0.2)
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, tuple) and batch[0].shape == (8, 1, 3, 3) and batch[1].shape == (8,)
    assert sum(len(y) for _, y in dm.val_dataloader()) == 10
    assert sum(len(y) for _, y in dm.test_dataloader()) == 10
    assert first_epoch(0) == first_epoch(0) != first_epoch(5)
    assert first_epoch(0) != sorted(first_epoch(0))
    with pytest.raises(ValueError, match="val_fraction"):
        ImageDataModule(_indexed(5), val_fraction=0.7)
    with pytest.raises(ValueError, match="too small"):
        ImageDataModule(_indexed(2), val_fraction=0.4).setup()


def test_datamodule_from_spec(tmp_path: Path) -> None:
    dm = ImageDataModule.from_spec("mnist-embedded", batch_size=50, seed=3)
    dm.setup()
    assert (len(dm.train_data), len(dm.val_data), len(dm.test_data)) == (7200, 800, 2000)
    assert dm.image_shape == (1, 28, 28) and dm.classes == [str(i) for i in range(10)]
    np.savez(tmp_path / "f.npz", x=np.zeros((30, 4, 4), np.float32))
    dm = ImageDataModule.from_spec(str(tmp_path / "f.npz"), val_fraction=0.1)
    dm.setup()
    assert (len(dm.train_data), len(dm.val_data), len(dm.test_data)) == (24, 3, 3)


def test_datamodule_with_lightning_trainer() -> None:
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(9, 1)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            x, y = batch
            return (self.lin(x.flatten(1)).squeeze(1) - y.float()).pow(2).mean()

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
            self.log("val", self.training_step(batch, 0))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(), datamodule=ImageDataModule(_indexed(40), batch_size=10))
    assert trainer.global_step == 4
