"""Frame selection under the cap (issue 12): one base path per pair, then ``CappedFrames`` with
other point costs or more base steps than frames, judged as in probe_path_scales.py.

    PYTHONPATH=../benchmarks python probe_selection.py --n 100 --bank-images 30000 \
        --model /work/runs/aae_d8/aae.safetensors base=32 'sel' 'sel,cycle=3' base=64 'sel'
Items run in order: ``base=T₀[,key=value]`` computes the base path (the optimiser with the
default energy at T₀ steps; ``it``, ``coarse``, ``rep``, ``cw``: its iterations,
``OptimizerConfig.coarse``, ``reparametrize`` and a factor on its point terms);
``sel[,density=a,cycle=b,classes=c,ratio=r,sub=s]`` re-chooses 32 frames along it with the
default energy's point terms × a, b, c as the costs.
"""

from __future__ import annotations

import argparse
import time

import torch
from evaluation_baselines import MNIST
from path_optimizer_sweep import pair_set
from probe_path_scales import load_model, parse

from latentnav.data import load_mnist
from latentnav.metrics import ood_detector, reconstruction_floor, reference_classifier
from latentnav.navigation import CappedFrames, Navigator, default_energy
from latentnav.navigation.energy import Energy, _ScaledPoints


def costs(energy: Energy, factors: dict[str, float]) -> Energy:
    """The energy's point terms, each × its factor (by term name; 0 drops it)."""
    names = {"density": "density", "cycle": "cycle", "endpoint_classes": "classes"}
    kept = []
    for term in energy.terms:
        if hasattr(term, "per_point"):
            f = factors.get(names[term.config()["term"]], 1.0)
            if f > 0:
                kept.append(_ScaledPoints(term, f))
    return Energy(*kept)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("items", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--pairs", choices=("dev", "final"), default="dev")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--bank-images", type=int, default=30_000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    aae, _ = load_model(args.model)
    train, test = load_mnist(MNIST, "train"), load_mnist(MNIST, "test")
    ia, ib = pair_set(test.labels, args.pairs, args.n)
    with torch.no_grad():
        za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    reference = reference_classifier(train.images, train.labels)
    detector = ood_detector(reference, train.images[args.bank_images :], test.images)
    floor = reconstruction_floor(detector, aae.reconstruct, test.images)["union"]
    print(f"d = {aae.latent_dim}, floor {floor:.4f}", flush=True)
    energy = default_energy(aae, aae.compass)
    base = nav = None
    for item in args.items:
        name, kw = parse(item.replace("base=", "base,steps=", 1))
        start = time.perf_counter()
        if name == "base":
            fields = {"iterations": int(kw.get("it", 100)), "coarse": int(kw.get("coarse", 1)),
                      "reparametrize": int(kw.get("rep", 0))}  # fmt: skip
            e = energy.with_point_scale(kw["cw"]) if "cw" in kw else energy
            nav = Navigator(aae, "optimizer", energy=e, steps=int(kw.get("steps", 32)), **fields)
            base = nav.path(za, zb)
            path, label = base, item
        else:
            factors = {k: float(v) for k, v in kw.items() if k in ("density", "cycle", "classes")}
            capped = CappedFrames(aae, nav.method, float(kw.get("ratio", 1.2)),
                                  int(kw.get("sub", 8)), energy=costs(energy, factors),
                                  steps=32)  # fmt: skip
            path, label = capped.select(base), f"  {item}"
        seconds = time.perf_counter() - start
        if path.z.shape[1] != 33:
            print(f"{label:40s} ({seconds:.1f} s)", flush=True)
            continue
        r = path.report(aae, detector=detector)
        over = path.records.get("over_cap", torch.zeros(1)).mean().item()
        print(f"{label:40s} union OOD {r.ood_rate['union']:.4f} step max {r.step_max:.4f} "
              f"≤1 change {r.at_most_one_change:.3f} over {over:.3f} ({seconds:.1f} s)",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
