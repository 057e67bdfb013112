"""Shared set-up of the issue-4 probes: the d = 8 AAE and compass of RESULTS 6.3, dev or final
pairs, the OOD detector, and a one-line report of a batch of paths."""

from __future__ import annotations

import torch
from evaluation_baselines import MNIST
from path_optimizer_sweep import OUT, pair_set

from latentnav.aae import AAE
from latentnav.compass import load_compass
from latentnav.data import load_mnist
from latentnav.latent_path import LatentPath
from latentnav.metrics import ood_detector, reference_classifier


def setup(which: str, n: int):
    """→ aae, compass, train, test, z_a (n, d), z_b (n, d), detector."""
    aae = AAE.load(OUT / "aae_d8" / "aae.safetensors").eval()
    compass = load_compass(OUT / "nav_d8_cal" / "compass.safetensors")
    train, test = load_mnist(MNIST, "train"), load_mnist(MNIST, "test")
    ia, ib = pair_set(test.labels, which, n)
    with torch.no_grad():
        za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    classifier = reference_classifier(train.images, train.labels)
    return aae, compass, train, test, za, zb, ood_detector(classifier, train.images, test.images)


def show(name: str, path: torch.Tensor | LatentPath, aae, detector) -> None:
    """Print union OOD, steps, class changes and length of paths (B, T + 1, d)."""
    if isinstance(path, torch.Tensor):
        path = LatentPath(path, {})
    r = path.report(aae, detector=detector)
    print(
        f"{name:40s} union OOD {r.ood_rate['union']:.4f} step mean {r.step_mean:.3f} "
        f"step max {r.step_max:.3f} ≤1 change {r.at_most_one_change:.3f} "
        f"changes {r.class_changes:.2f} len {r.length_ratio:.2f}",
        flush=True,
    )
