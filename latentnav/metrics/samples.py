"""Sample-quality metrics in the reference feature space (DESIGN.md §7).

FID (torchmetrics' ``FrechetInceptionDistance`` with our extractor as its ``feature`` module),
an inception-style score, precision / recall / density / coverage by k-NN (Kynkäänniemi et al.
2019; Naeem et al. 2020), the Parzen-window log-likelihood of the AAE paper (Makhzani et al.
2015, after Goodfellow et al. 2014), conditional accuracy, PSNR and SSIM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)
from torchmetrics.image.fid import FrechetInceptionDistance
from tqdm.auto import tqdm

from latentnav._checks import check_images, check_latents
from latentnav.metrics.neighbours import knn_distances, squared_distances

__all__ = [
    "FeatureExtractor",
    "fid",
    "inception_score",
    "PRDC",
    "precision_recall",
    "ParzenResult",
    "parzen_log_likelihood",
    "parzen_evaluate",
    "classifier_accuracy",
    "psnr",
    "ssim",
]


class FeatureExtractor(nn.Module):
    """Wraps ``fn: (B, ...) → (B, F)`` (e.g. ``ReferenceClassifier.features``) as the
    ``feature`` module torchmetrics expects; ``fn=None`` is the identity on ``(B, F)`` vectors."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor] | None, num_features: int):
        super().__init__()
        self.fn, self.num_features = fn, int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) if self.fn is None else self.fn(x)


def fid(
    real: torch.Tensor,
    fake: torch.Tensor,
    extractor: nn.Module | None = None,
    batch_size: int = 1000,
) -> float:
    """Fréchet distance between Gaussians fitted to the features of ``real`` and ``fake``.

    With ``extractor`` (an ``nn.Module`` with ``num_features``, e.g. :class:`FeatureExtractor`)
    real/fake are images ``(N, C, H, W)``; without it they already are features ``(N, F)``.
    """
    if extractor is None:
        check_latents(real, None, "real")
        check_latents(fake, real.shape[1], "fake")
        extractor = FeatureExtractor(None, real.shape[1])
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError(f"fid needs ≥ 2 items per set, got {real.shape[0]} and {fake.shape[0]}")
    metric = FrechetInceptionDistance(feature=extractor, normalize=True)
    with torch.no_grad():
        for chunk in real.split(batch_size):
            metric.update(chunk, real=True)
        for chunk in fake.split(batch_size):
            metric.update(chunk, real=False)
        return float(metric.compute())


def inception_score(probs: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp E_x KL(p(y|x) ‖ p(y)) from class probabilities ``(N, K)``: mean and std over
    ``splits`` consecutive chunks (Salimans et al. 2016), here with the reference classifier."""
    check_latents(probs, None, "probs")
    if (probs < 0).any() or not torch.allclose(probs.sum(1), torch.ones_like(probs[:, 0]), 0, 1e-3):
        raise ValueError("probs must be non-negative rows summing to 1, shape (N, K)")
    if not 1 <= splits <= probs.shape[0]:
        raise ValueError(f"splits must be in [1, N={probs.shape[0]}], got {splits}")
    p = probs.double().clamp_min(1e-12)
    scores = []
    for part in p.chunk(splits):
        marginal = part.mean(0, keepdim=True)
        scores.append((part * (part.log() - marginal.log())).sum(1).mean().exp())
    scores_t = torch.stack(scores)
    return float(scores_t.mean()), float(scores_t.std(unbiased=False))


@dataclass(frozen=True)
class PRDC:
    """Precision, recall, density, coverage for one k (Naeem et al. 2020)."""

    k: int
    precision: float
    recall: float
    density: float
    coverage: float


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, ks: Sequence[int] = (3, 5), chunk: int = 1024
) -> dict[int, PRDC]:
    """k-NN precision / recall / density / coverage of features ``fake: (M, F)`` against
    ``real: (N, F)``, one :class:`PRDC` per k. A point is inside a set's manifold when it lies
    within the k-th-neighbour radius of some member of that set."""
    check_latents(real, None, "real")
    check_latents(fake, real.shape[1], "fake")
    real, fake = real.double(), fake.double()
    kmax = max(ks)
    real_radii = knn_distances(real, real, kmax, exclude_self=True, chunk=chunk)
    fake_radii = knn_distances(fake, fake, kmax, exclude_self=True, chunk=chunk)
    out = {}
    for k in ks:
        r_real, r_fake = real_radii[:, k - 1], fake_radii[:, k - 1]
        inside_real, density, covered = [], torch.zeros((), dtype=torch.float64), []
        for part in fake.split(chunk):
            within = squared_distances(part, real).sqrt() <= r_real  # (m, N)
            inside_real.append(within.any(1))
            density += within.sum()
        inside_fake, nearest_fake = [], []
        for part in real.split(chunk):
            dist = squared_distances(part, fake).sqrt()  # (n, M)
            inside_fake.append((dist <= r_fake).any(1))
            nearest_fake.append(dist.amin(1))
        covered = torch.cat(nearest_fake) <= r_real
        out[k] = PRDC(
            k=k,
            precision=float(torch.cat(inside_real).double().mean()),
            recall=float(torch.cat(inside_fake).double().mean()),
            density=float(density / (k * fake.shape[0])),
            coverage=float(covered.double().mean()),
        )
    return out


def parzen_log_likelihood(
    samples: torch.Tensor,
    test: torch.Tensor,
    sigmas: float | Sequence[float] | torch.Tensor,
    chunk: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """log p(x) of each test point under the Gaussian Parzen window on ``samples``:

    log p(x) = logsumexp_i(−‖x − s_i‖² / 2σ²) − log N − (D/2) log(2πσ²).
    ``samples: (N, D)``, ``test: (M, D)`` (images are flattened) → ``(S, M)`` for S sigmas
    (``(M,)`` for a scalar σ). Float64, chunked over test points: memory O(chunk · N).
    """
    scalar = isinstance(sigmas, float | int) or (torch.is_tensor(sigmas) and sigmas.ndim == 0)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    if (sig <= 0).any():
        raise ValueError(f"sigmas must be > 0, got {sig.tolist()}")
    s = check_latents(samples.flatten(1), None, "samples").double()
    x = check_latents(test.flatten(1), s.shape[1], "test").double()
    n, dim = s.shape
    norm = math.log(n) + 0.5 * dim * torch.log(2 * math.pi * sig**2)  # (S,)
    out = []
    parts = x.split(chunk)
    for part in tqdm(parts, disable=not progress, desc="Parzen", leave=False):
        d2 = squared_distances(part, s)  # (m, N); one (m, N) temporary per σ below
        lse = torch.stack([torch.logsumexp(d2 / (-2 * v**2), dim=1) for v in sig.tolist()])
        out.append(lse - norm.view(-1, 1))
    result = torch.cat(out, dim=1)
    return result[0] if scalar else result


@dataclass(frozen=True)
class ParzenResult:
    """σ chosen on the validation split; mean ± standard error of test log-likelihood."""

    sigma: float
    mean: float
    stderr: float
    sigmas: tuple[float, ...]
    validation: tuple[float, ...]

    def __str__(self) -> str:
        return f"Parzen log-likelihood {self.mean:.1f} ± {self.stderr:.1f} (σ = {self.sigma:.3g})"


def parzen_evaluate(
    samples: torch.Tensor,
    validation: torch.Tensor,
    test: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor | None = None,
    chunk: int = 256,
    progress: bool = True,
) -> ParzenResult:
    """The AAE paper's protocol: Parzen window fit on generated ``samples``, σ chosen to
    maximise the mean log-likelihood of ``validation``, reported on ``test``.
    Default grid: 25 values of σ log-spaced in [0.05, 1] (pixels in [0, 1])."""
    default = torch.logspace(math.log10(0.05), 0, 25, dtype=torch.float64)
    grid = default if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    curve = parzen_log_likelihood(samples, validation, grid, chunk, progress).mean(1)
    best = float(grid[int(curve.argmax())])
    ll = parzen_log_likelihood(samples, test, best, chunk, progress)
    stderr = float(ll.std() / math.sqrt(ll.numel())) if ll.numel() > 1 else float("nan")
    return ParzenResult(best, float(ll.mean()), stderr, tuple(grid.tolist()), tuple(curve.tolist()))


def classifier_accuracy(
    classifier: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor
) -> float:
    """Share of conditional samples ``images: (N, C, H, W)`` that ``classifier`` (images →
    logits or probs ``(N, K)``, e.g. ``ReferenceClassifier.logits``) assigns their ``labels``."""
    check_images(images, None, "images")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    pred = classifier(images).argmax(-1).cpu()
    return float((pred == labels.cpu()).double().mean())


def _pair(x: torch.Tensor, target: torch.Tensor) -> None:
    check_images(x, None, "x")
    check_images(target, tuple(x.shape[1:]), "target")
    if x.ndim != 4 or x.shape[0] != target.shape[0]:
        raise ValueError(
            f"x and target must both be (B, C, H, W), got {tuple(x.shape)}, {tuple(target.shape)}"
        )


def psnr(x: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image ``(B,)`` in dB; ``x, target: (B, C, H, W)``."""
    _pair(x, target)
    return peak_signal_noise_ratio(
        x, target, data_range=data_range, reduction="none", dim=(1, 2, 3)
    )


def ssim(x: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image ``(B,)`` (Gaussian window 11, σ 1.5)."""
    _pair(x, target)
    return structural_similarity_index_measure(x, target, data_range=data_range, reduction="none")
