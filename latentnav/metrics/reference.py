"""Reference classifier: the feature space of every sample and path metric (DESIGN.md §7).

A small CNN trained once per dataset on its training split and cached on disk under
``$LATENTNAV_CACHE`` (default ``~/.cache/latentnav``)/``reference``, keyed by a hash of the
training data, the config and the seed. Weights are safetensors (no code runs on load).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from latentnav._checks import check_images
from latentnav._modules import evaluating
from latentnav.checkpoint import load_into, load_tensors, save_tensors

__all__ = [
    "ReferenceConfig",
    "ReferenceClassifier",
    "reference_classifier",
    "cache_root",
    "data_fingerprint",
]

CHECKPOINT_KIND = "latentnav.reference/1"


@dataclass(frozen=True)
class ReferenceConfig:
    """CNN width and training schedule. ``channels``: widths of the two conv stages."""

    channels: tuple[int, int] = (32, 64)
    hidden: int = 128
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_shift: int = 2
    max_blur: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise ValueError(f"channels must be two positive widths, got {self.channels}")
        if self.hidden < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("hidden, epochs and batch_size must be ≥ 1")
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be ≥ 0, got {self.max_shift}")
        if self.max_blur < 0:
            raise ValueError(f"max_blur must be ≥ 0, got {self.max_blur}")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$LATENTNAV_CACHE``, else ``~/.cache/latentnav``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("LATENTNAV_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "latentnav"


def data_fingerprint(images: torch.Tensor, labels: torch.Tensor | None = None) -> str:
    """SHA-256 (hex, 16 chars) of the image tensor (and labels): the identity of a dataset."""
    digest = hashlib.sha256()
    digest.update(str((tuple(images.shape), str(images.dtype))).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    if labels is not None:
        digest.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class ReferenceClassifier(nn.Module):
    """CNN ``x: (B, C, H, W)`` in [0, 1] → logits ``(B, K)``; two conv stages, then
    ``hidden`` penultimate units. Every public method runs in eval mode, batched, without grad."""

    def __init__(
        self, image_shape: tuple[int, int, int], num_classes: int, config: ReferenceConfig
    ):
        super().__init__()
        c, h, w = image_shape
        if h < 4 or w < 4:
            raise ValueError(f"image_shape must be (C, H, W) with H, W ≥ 4, got {image_shape}")
        self.image_shape, self.num_classes, self.config = tuple(image_shape), num_classes, config
        c1, c2 = config.channels
        self.stage1, self.stage2 = _stage(c, c1), _stage(c1, c2)
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.penultimate = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 16, config.hidden), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(config.hidden, num_classes)
        self.num_features = config.hidden

    # ------------------------------------------------------------------ maths, differentiable

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        early = self.stage1((x - 0.5) / 0.5)
        return early, self.penultimate(self.pool(self.stage2(early)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` (differentiable; caller picks train/eval mode)."""
        return self.head(self.dropout(self._embed(x)[1]))

    # ------------------------------------------------------------------ evaluation helpers

    def _batched(
        self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], batch_size: int
    ) -> torch.Tensor:
        check_images(x, self.image_shape, "x")
        device = next(self.parameters()).device
        with evaluating(self), torch.no_grad():
            out = [fn(chunk.to(device, torch.float32)) for chunk in x.split(batch_size)]
        return torch.cat(out).to(x.device)

    def features(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Penultimate activations ``(B, hidden)``: the reference feature space."""
        return self._batched(x, lambda b: self._embed(b)[1], batch_size)

    def conv_features(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """First conv stage, average-pooled to 7×7: ``(B, channels[0]·49)`` (stroke level)."""
        return self._batched(
            x,
            lambda b: F.adaptive_avg_pool2d(self.stage1((b - 0.5) / 0.5), 7).flatten(1),
            batch_size,
        )

    def logits(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Logits ``(B, K)``."""
        return self._batched(x, lambda b: self.head(self._embed(b)[1]), batch_size)

    def probs(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Class probabilities ``(B, K)``."""
        return self.logits(x, batch_size).softmax(-1)

    def energy(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Classifier energy ``−logsumexp(logits)`` ``(B,)``: high for out-of-distribution x."""
        return -torch.logsumexp(self.logits(x, batch_size), -1)

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
        """Top-1 accuracy on ``images: (N, C, H, W)``, ``labels: (N,)``."""
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
        pred = self.logits(images, batch_size).argmax(-1)
        return float((pred.cpu() == labels.cpu()).float().mean())

    # ------------------------------------------------------------------ training and storage

    @classmethod
    def fit(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        config: ReferenceConfig | None = None,
        progress: bool = True,
    ) -> ReferenceClassifier:
        """Train on ``images: (N, C, H, W)`` in [0, 1], ``labels: (N,)`` int64 (0..K−1).

        AdamW with a one-cycle schedule; augmentation: random shifts of up to ``max_shift``
        pixels, and a Gaussian blur of σ ~ U(0, ``max_blur``) on half of each batch, so that
        blurry decoder outputs get their class rather than one catch-all class.
        Deterministic given ``config.seed``; the caller's global RNG state is left untouched.
        """
        config = config or ReferenceConfig()
        check_images(images, None, "images")
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        if labels.dtype != torch.int64 or labels.shape != (images.shape[0],) or labels.min() < 0:
            raise ValueError(f"labels must be int64 (N,) ≥ 0, got {labels.dtype} {labels.shape}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = cls(tuple(images.shape[1:]), int(labels.max()) + 1, config)
            _train(model, images, labels, config, progress)
        return model.eval()

    def save(self, path: str | os.PathLike) -> Path:
        """Weights and config to one safetensors file, atomically."""
        meta = {
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "config": asdict(self.config),
        }
        return save_tensors(path, self.state_dict(), CHECKPOINT_KIND, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceClassifier:
        tensors, meta = load_tensors(path, CHECKPOINT_KIND)
        cfg = meta["config"]
        config = ReferenceConfig(**{**cfg, "channels": tuple(cfg["channels"])})
        model = cls(tuple(meta["image_shape"]), int(meta["num_classes"]), config)
        load_into(model, tensors, Path(path))
        return model.eval()

    def fingerprint(self) -> str:
        """Hash of the weights: identifies this classifier in downstream caches."""
        digest = hashlib.sha256()
        for key, value in sorted(self.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


def _train(
    model: ReferenceClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: ReferenceConfig,
    progress: bool,
) -> None:
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = -(-images.shape[0] // config.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.2
    )
    model.train()
    bar = tqdm(total=config.epochs * steps_per_epoch, disable=not progress, desc="reference CNN")
    for _ in range(config.epochs):
        order = torch.randperm(images.shape[0], generator=generator)
        for idx in order.split(config.batch_size):
            x = _shift(images[idx].float(), config.max_shift, generator)
            x = _blur(x, config.max_blur, generator)
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()


def _shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random integer offset in [−max_shift, max_shift]² (zero fill)."""
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    return padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def _blur(x: torch.Tensor, max_blur: float, generator: torch.Generator) -> torch.Tensor:
    """Blur a random half of the images with a Gaussian of σ ~ U(0, max_blur) (per image)."""
    if max_blur == 0:
        return x
    b, c, h, w = x.shape
    sigma = torch.rand(b, generator=generator) * max_blur
    sigma = torch.where(torch.rand(b, generator=generator) < 0.5, sigma, 0.0)
    offsets = torch.arange(-3, 4, dtype=x.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma.clamp_min(1e-3)[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (b·c, 7)
    flat = x.reshape(1, b * c, h, w)
    flat = F.conv2d(flat, kernel.view(b * c, 1, 7, 1), padding=(3, 0), groups=b * c)
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, 7), padding=(0, 3), groups=b * c)
    return flat.view(b, c, h, w)


def reference_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: ReferenceConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> ReferenceClassifier:
    """The reference classifier of a training set, trained once and cached (DESIGN.md §7).

    The cache key hashes the data (``data_fingerprint``), the config and the seed; a cached
    file is loaded (safetensors), otherwise the classifier is trained and saved atomically.
    """
    config = config or ReferenceConfig()
    key = json.dumps({"data": data_fingerprint(images, labels), "config": asdict(config)})
    name = hashlib.sha256(key.encode()).hexdigest()[:20]
    path = cache_root(cache_dir) / "reference" / f"{name}.safetensors"
    if path.is_file():
        return ReferenceClassifier.load(path)
    model = ReferenceClassifier.fit(images, labels, config, progress)
    model.save(path)
    return model
