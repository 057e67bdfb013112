"""Lightning data module over ``ImageData`` with seeded train/val/test splits."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from latentnav.data.images import ImageData
from latentnav.data.sources import dataset_splits, load_dataset

__all__ = ["ImageDataModule", "EpochShuffle"]


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(n)`` that is a function of ``(seed, epoch)`` only.

    Lightning calls ``set_epoch`` before every epoch, so epoch k's order does not depend on how
    many epochs this process has run: a run resumed at epoch k draws the batches the
    uninterrupted run drew. (It replaces ``DataLoader(shuffle=True, generator=seeded)``, whose
    order depended on the epochs drawn before; the orders differ from those of older runs.)
    """

    def __init__(self, n: int, seed: int = 0):
        if not (isinstance(n, int) and n >= 0):
            raise ValueError(f"n must be an int ≥ 0, got {n!r}")
        self.n, self.seed, self.epoch = n, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        # one seed per (seed, epoch) pair, distinct for epochs < 2**20, below torch's 2**64 limit
        g = torch.Generator().manual_seed((self.seed * 2**20 + self.epoch) % 2**63)
        return iter(torch.randperm(self.n, generator=g).tolist())


def _collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*batch, strict=True)
    return torch.stack(images), torch.stack(labels)


class ImageDataModule(L.LightningDataModule):
    """Batches ``(images: (B, C, H, W), labels: (B,))`` from an ``ImageData`` train/test pair.

    ``setup()`` holds out ``val_fraction`` of ``train`` as validation (and, when ``test`` is
    None, another ``val_fraction`` as test) using ``seed``; the results are ``train_data``,
    ``val_data`` and ``test_data``. Dataloaders call ``setup()`` themselves if needed.
    """

    def __init__(
        self,
        train: ImageData,
        test: ImageData | None = None,
        batch_size: int = 100,
        val_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(train, ImageData):
            raise TypeError(f"train must be ImageData, got {type(train).__name__}")
        if test is not None and not isinstance(test, ImageData):
            raise TypeError(f"test must be ImageData or None, got {type(test).__name__}")
        if test is not None and test.image_shape != train.image_shape:
            raise ValueError(
                f"test images {test.image_shape} must match train images {train.image_shape}"
            )
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be an int ≥ 1, got {batch_size!r}")
        if not 0.0 <= val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5), got {val_fraction}")
        if not (isinstance(num_workers, int) and num_workers >= 0):
            raise ValueError(f"num_workers must be an int ≥ 0, got {num_workers!r}")
        self.save_hyperparameters(ignore=["train", "test"])
        self._train_source = train
        self._test_source = test
        self.batch_size = batch_size
        self.val_fraction = float(val_fraction)
        self.seed = int(seed)
        self.num_workers = num_workers
        self.train_data: ImageData | None = None
        self.val_data: ImageData | None = None
        self.test_data: ImageData | None = None

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> ImageDataModule:
        """Build from ``load_dataset(spec)``; its test split is used when the source has one."""
        train = load_dataset(spec, "train")
        test = load_dataset(spec, "test") if "test" in dataset_splits(spec) else None
        return cls(train, test, **kwargs)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return self._train_source.image_shape

    @property
    def classes(self) -> list[str] | None:
        return self._train_source.classes

    def setup(self, stage: str | None = None) -> None:
        if self.train_data is not None:
            return
        n = len(self._train_source)
        n_val = max(1, round(n * self.val_fraction)) if self.val_fraction > 0 else 0
        n_test = n_val if self._test_source is None else 0
        if n - n_val - n_test < 1:
            raise ValueError(
                f"train set of {n} image(s) is too small for val_fraction={self.val_fraction}"
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        val_idx = perm[:n_val].sort().values
        test_idx = perm[n_val : n_val + n_test].sort().values
        train_idx = perm[n_val + n_test :].sort().values
        self.val_data = self._train_source.subset(val_idx)
        self.train_data = self._train_source.subset(train_idx)
        self.test_data = (
            self._test_source
            if self._test_source is not None
            else self._train_source.subset(test_idx)
        )

    def _loader(self, data: ImageData | None, shuffle: bool) -> DataLoader:
        assert data is not None  # set by setup()
        return DataLoader(
            TensorDataset(data.images, data.labels),
            batch_size=self.batch_size,
            sampler=EpochShuffle(len(data), self.seed) if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=_collate,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.train_data, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.val_data, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.test_data, shuffle=False)
