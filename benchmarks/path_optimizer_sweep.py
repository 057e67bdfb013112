"""Path-level optimiser on MNIST d = 8 (issue 4): density weight λ against frame cleanliness and
smoothness, on the first 200 of the navigator benchmark's pairs, T = 32, 100 Adam iterations.
Needs the calibrated compass written by navigator_mnist.py.

    python benchmarks/path_optimizer_sweep.py 0 3 10 30
"""

import sys
import time
from pathlib import Path

import torch
from evaluation_baselines import MNIST, different_class_pairs

from latentnav.aae import AAE
from latentnav.compass import load_compass
from latentnav.data import load_mnist
from latentnav.interpolation import interpolate
from latentnav.latent_path import LatentPath
from latentnav.metrics import ood_detector, reference_classifier
from latentnav.path_optimizer import PathOptimizerConfig, optimize_paths

OUT = Path(__file__).resolve().parent / "out"

if __name__ == "__main__":
    torch.set_num_threads(2)
    aae = AAE.load(OUT / "aae_d8" / "aae.safetensors")
    compass = load_compass(OUT / "nav_d8_cal" / "compass.safetensors")
    train, test = load_mnist(MNIST, "train"), load_mnist(MNIST, "test")
    ia, ib = different_class_pairs(test.labels, 1000, 0)
    ia, ib = ia[:200], ib[:200]
    with torch.no_grad():
        za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    detector = ood_detector(
        reference_classifier(train.images, train.labels), train.images, test.images
    )
    z = interpolate(za, zb, 32)
    slerp = LatentPath(
        z,
        torch.full(z.shape[:2], 0.5),
        torch.zeros(z.shape[:2], dtype=torch.int64),
        torch.ones(z.shape[:2], dtype=torch.bool),
    )
    runs = {"slerp": lambda: slerp}
    for w in map(float, sys.argv[1:]):
        config = PathOptimizerConfig(density_weight=w, iterations=100)
        runs[f"λ = {w:g}"] = lambda c=config: optimize_paths(aae, za, zb, compass, c)
    for name, run in runs.items():
        start = time.perf_counter()
        report = run().report(aae, detector=detector)
        print(
            f"{name:8s} union OOD {report.ood_rate['union']:.4f}  step mean {report.step_mean:.3f}"
            f"  step max {report.step_max:.3f}  ≤1 class change {report.at_most_one_change:.3f}"
            f"  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
