"""Benchmark: reference classifier accuracy on full MNIST (DESIGN.md §7; issue 3 needs ≥ 99%).

    python benchmarks/reference_classifier.py [--data /work/shared/data/mnist.npz] [--threads 1]

Trains (or loads from the cache) the reference CNN on the training split and prints the test
accuracy, the training time and the cache file. Rerunning must print the same accuracy.
"""

from __future__ import annotations

import argparse
import time

import torch

from latentnav.data import load_dataset
from latentnav.metrics import ReferenceConfig, reference_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/mnist.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=ReferenceConfig().epochs)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train = load_dataset(f"mnist:{args.data}", "train")
    test = load_dataset(f"mnist:{args.data}", "test")
    config = ReferenceConfig(seed=args.seed, epochs=args.epochs)
    start = time.perf_counter()
    model = reference_classifier(train.images, train.labels, config, cache_dir=args.cache_dir)
    seconds = time.perf_counter() - start
    acc = model.accuracy(test.images, test.labels)
    print(f"reference classifier {config}")
    print(f"train N={len(train)}  test N={len(test)}  train/load time {seconds:.1f} s")
    print(f"test accuracy {100 * acc:.2f}%  (weights fingerprint {model.fingerprint()})")
    if acc < 0.99:
        raise SystemExit(f"FAIL: test accuracy {acc:.4f} < 0.99")


if __name__ == "__main__":
    main()
