"""Out-of-distribution frame detectors (DESIGN.md §7, issue 3).

A frame is OOD for a detector when its score exceeds that detector's threshold: the
``quantile`` (99th percentile) of the same score on real held-out images. Scores:

- ``feature``: cosine distance to the nearest bank image in the reference penultimate features;
- ``conv``: Euclidean nearest-neighbour distance in the first conv stage's features;
- ``pixel``: Euclidean nearest-neighbour distance in pixels;
- ``relative``: the pixel distance divided by the frame's own norm (scale-aware: a faint or
  empty frame is near the thinnest digits in absolute terms, far in relative ones);
- ``energy``: the reference classifier's energy −logsumexp(logits).

``union`` flags a frame when any detector does. Banks (training images) and thresholds are
computed once and cached under the latentnav cache dir, keyed by classifier and data hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from latentnav._checks import check_images
from latentnav.checkpoint import load_tensors, save_tensors
from latentnav.metrics.neighbours import nearest_distance
from latentnav.metrics.reference import ReferenceClassifier, cache_root, data_fingerprint

__all__ = ["DETECTORS", "OODConfig", "OODDetector", "ood_detector"]

DETECTORS = ("feature", "conv", "pixel", "relative", "energy")
CHECKPOINT_KIND = "latentnav.ood/1"
_BANKS = ("feature", "conv", "pixel")


@dataclass(frozen=True)
class OODConfig:
    """``bank_size`` training images (random subset by ``seed``; None = all) form the banks;
    thresholds are the ``quantile`` of each score on the reference (real test) images."""

    bank_size: int | None = 10000
    quantile: float = 0.99
    seed: int = 0
    chunk: int = 512

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        if self.bank_size is not None and self.bank_size < 1:
            raise ValueError(f"bank_size must be ≥ 1 or None, got {self.bank_size}")


class OODDetector:
    """Scores and flags frames ``x: (B, C, H, W)`` in [0, 1] with the five detectors."""

    def __init__(
        self,
        classifier: ReferenceClassifier,
        banks: dict[str, torch.Tensor],
        thresholds: dict[str, float],
        config: OODConfig,
    ):
        missing = [name for name in _BANKS if name not in banks]
        if missing or set(thresholds) != set(DETECTORS):
            raise ValueError(f"need banks {_BANKS} and thresholds {DETECTORS}; missing {missing}")
        self.classifier, self.banks, self.config = classifier, banks, config
        self.thresholds = {name: float(thresholds[name]) for name in DETECTORS}

    @classmethod
    def fit(
        cls,
        classifier: ReferenceClassifier,
        train_images: torch.Tensor,
        reference_images: torch.Tensor,
        config: OODConfig | None = None,
    ) -> OODDetector:
        """Banks from ``train_images: (N, C, H, W)``; thresholds from ``reference_images``
        (real images outside the bank, e.g. the test split)."""
        config = config or OODConfig()
        check_images(train_images, classifier.image_shape, "train_images")
        check_images(reference_images, classifier.image_shape, "reference_images")
        bank_images = train_images
        if config.bank_size is not None and config.bank_size < train_images.shape[0]:
            generator = torch.Generator().manual_seed(config.seed)
            keep = torch.randperm(train_images.shape[0], generator=generator)[: config.bank_size]
            bank_images = train_images[keep.sort().values]
        banks = {
            "feature": classifier.features(bank_images),
            "conv": classifier.conv_features(bank_images),
            "pixel": bank_images.flatten(1).float().clone(),
        }
        detector = cls(classifier, banks, dict.fromkeys(DETECTORS, 0.0), config)
        scores = detector.scores(reference_images)
        q = config.quantile
        detector.thresholds = {k: float(torch.quantile(v.double(), q)) for k, v in scores.items()}
        return detector

    def scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-detector scores ``(B,)`` (higher = further from the data)."""
        check_images(x, self.classifier.image_shape, "x")
        chunk = self.config.chunk
        pixels = x.flatten(1).float()
        pixel = nearest_distance(pixels, self.banks["pixel"], chunk=chunk)
        norm = pixels.norm(dim=1)
        relative = torch.where(norm > 1e-8, pixel / norm.clamp_min(1e-8), torch.inf)
        return {
            "feature": nearest_distance(
                self.classifier.features(x), self.banks["feature"], "cosine", chunk
            ),
            "conv": nearest_distance(
                self.classifier.conv_features(x), self.banks["conv"], chunk=chunk
            ),
            "pixel": pixel,
            "relative": relative,
            "energy": self.classifier.energy(x),
        }

    def flags(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Boolean flags ``(B,)`` per detector, plus ``union`` (any detector)."""
        flags = {k: v > self.thresholds[k] for k, v in self.scores(x).items()}
        flags["union"] = torch.stack(list(flags.values())).any(0)
        return flags

    def flag_rates(self, x: torch.Tensor) -> dict[str, float]:
        """Share of ``x`` flagged by each detector and by the union."""
        return {k: float(v.double().mean()) for k, v in self.flags(x).items()}

    def save(self, path: str | os.PathLike) -> Path:
        """Banks and thresholds (not the classifier) to one safetensors file, atomically."""
        meta = {
            "thresholds": self.thresholds,
            "config": asdict(self.config),
            "classifier": self.classifier.fingerprint(),
        }
        return save_tensors(path, self.banks, CHECKPOINT_KIND, meta)

    @classmethod
    def load(cls, path: str | os.PathLike, classifier: ReferenceClassifier) -> OODDetector:
        """Load banks and thresholds saved for ``classifier`` (its fingerprint must match)."""
        banks, meta = load_tensors(path, CHECKPOINT_KIND)
        if meta["classifier"] != classifier.fingerprint():
            raise ValueError(f"{path} was fitted for another reference classifier")
        return cls(classifier, banks, meta["thresholds"], OODConfig(**meta["config"]))


def ood_detector(
    classifier: ReferenceClassifier,
    train_images: torch.Tensor,
    reference_images: torch.Tensor,
    config: OODConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> OODDetector:
    """:meth:`OODDetector.fit`, computed once and cached (``cache_root(cache_dir)/ood``)."""
    config = config or OODConfig()
    key = json.dumps(
        {
            "classifier": classifier.fingerprint(),
            "train": data_fingerprint(train_images),
            "reference": data_fingerprint(reference_images),
            "config": asdict(config),
        }
    )
    path = (
        cache_root(cache_dir)
        / "ood"
        / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.safetensors"
    )
    if path.is_file():
        return OODDetector.load(path, classifier)
    detector = OODDetector.fit(classifier, train_images, reference_images, config)
    detector.save(path)
    return detector
