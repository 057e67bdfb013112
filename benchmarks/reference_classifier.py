"""Benchmark: reference classifier accuracy on full MNIST (DESIGN.md §7; issue 3 needs ≥ 99%).

    python benchmarks/reference_classifier.py [--data PATH/mnist.npz] [--threads 1]
    python benchmarks/reference_classifier.py --smoke    # narrow CNN, embedded subset, no bar

Trains (or loads from the cache) the reference CNN on the training split and prints the test
accuracy, the training time and the cache file. Rerunning must print the same accuracy.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from common import (
    SMOKE_REFERENCE,
    base_parser,
    json_path,
    load_splits,
    parse_args,
    write_json,
)

from latentnav.metrics import ReferenceConfig, reference_classifier


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=ReferenceConfig().epochs)
    parser.add_argument("--cache-dir", default=None)
    args = parse_args(parser, argv)
    train, test = load_splits(args)
    # --smoke: the judge's narrow CNN of the other smokes (cached once for all of them).
    config = SMOKE_REFERENCE if args.smoke else ReferenceConfig(seed=args.seed, epochs=args.epochs)
    start = time.perf_counter()
    model = reference_classifier(
        train.images, train.labels, config, cache_dir=args.cache_dir, progress=not args.smoke
    )
    seconds = time.perf_counter() - start
    acc = model.accuracy(test.images, test.labels)
    print(f"reference classifier {config}")
    print(f"train N={len(train)}  test N={len(test)}  train/load time {seconds:.1f} s")
    print(f"test accuracy {100 * acc:.2f}%  (weights fingerprint {model.fingerprint()})")
    if args.out:
        result = {"config": asdict(config), "n_train": len(train), "n_test": len(test)}
        result |= {"seconds": seconds, "test_accuracy": acc, "fingerprint": model.fingerprint()}
        write_json(json_path(args.out, "reference_classifier.json"), result)
    if acc < 0.99 and not args.smoke:
        raise SystemExit(f"FAIL: test accuracy {acc:.4f} < 0.99")


if __name__ == "__main__":
    main()
