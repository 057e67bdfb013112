"""Shared session fixtures of the metrics tests: a small reference CNN and its OOD detector.

The classifier is trained once per test session on the embedded MNIST subset (one short epoch,
narrow CNN) into a temporary cache dir; test modules load these fixtures with ``pytest_plugins``.
Training runs on one CPU thread: on a shared 2-core machine two OpenMP threads are several times
slower than one when other jobs run beside the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from latentnav.data import ImageData, load_embedded_mnist
from latentnav.metrics import (
    OODConfig,
    OODDetector,
    ReferenceClassifier,
    ReferenceConfig,
    ood_detector,
    reference_classifier,
)

SMALL = ReferenceConfig(channels=(16, 32), hidden=64, epochs=1, batch_size=128, seed=0)


@dataclass
class Reference:
    classifier: ReferenceClassifier
    config: ReferenceConfig
    cache_dir: Path
    train: ImageData
    test: ImageData


@dataclass
class Detection:
    detector: OODDetector
    fit_images: torch.Tensor  # real test images the thresholds were fitted on
    held_out: torch.Tensor  # other real test images


@contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Reference:
    cache_dir = tmp_path_factory.mktemp("latentnav-cache")
    train, test = load_embedded_mnist("train"), load_embedded_mnist("test")
    with _one_thread():
        model = reference_classifier(train.images, train.labels, SMALL, cache_dir, progress=False)
    return Reference(model, SMALL, cache_dir, train, test)


@pytest.fixture(scope="session")
def detection(reference) -> Detection:
    order = torch.randperm(len(reference.test), generator=torch.Generator().manual_seed(1))
    fit_images = reference.test.images[order[:1000]]
    held_out = reference.test.images[order[1000:]]
    config = OODConfig(bank_size=4000, seed=0)
    with _one_thread():
        detector = ood_detector(
            reference.classifier, reference.train.images, fit_images, config, reference.cache_dir
        )
    return Detection(detector, fit_images, held_out)
