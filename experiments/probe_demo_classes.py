"""Class stability of the default navigator on a `latentnav demo` run (README "What you get"):
SLERP, `Navigator(aae)`, the optimiser before the cap and `label_free` with and without it, on
the demo's own pairs of different classes, judged by the reference classifier.

    python probe_demo_classes.py /tmp/demo/bundle.safetensors --pairs 8 40
"""

from __future__ import annotations

import argparse
import time

import torch

from latentnav.data import load_dataset
from latentnav.demo import _pairs
from latentnav.joint import load_bundle
from latentnav.metrics import reference_classifier
from latentnav.navigation import CappedFrames, Navigator, make_method
from latentnav.navigation.energy import label_free


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("bundle")
    p.add_argument("--pairs", type=int, nargs="+", default=[8, 40])
    p.add_argument("--data", default="mnist-embedded")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    aae = load_bundle(args.bundle)[0].eval()
    train, test = load_dataset(args.data, "train"), load_dataset(args.data, "test")
    classifier = reference_classifier(train.images, train.labels)
    optimizer = make_method("optimizer", aae, steps=32)
    free = make_method("optimizer", aae, steps=32, energy=label_free(aae, aae.compass))
    methods = {"slerp": make_method("slerp", aae, steps=32), "default": Navigator(aae).method,
               "optimizer, no cap": optimizer, "label_free, capped": CappedFrames(aae, base=free),
               "label_free, no cap": free}  # fmt: skip
    for n in args.pairs:
        ia, ib = _pairs(test.labels, n, 0)
        with torch.no_grad():
            za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
        for name, method in methods.items():
            start = time.perf_counter()
            r = method.path(za, zb).report(aae, classifier=classifier)
            seconds = time.perf_counter() - start
            print(f"{n} pairs  {name:20s} ≤1 class change {r.at_most_one_change:.3f}  step max "
                  f"{r.step_max:.3f}  ({seconds:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
