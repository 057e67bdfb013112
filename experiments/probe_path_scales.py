"""Scale-free navigation defaults (issue 12): the data scales of each AAE, and the label-free
energy with fixed weights (``label_free``) against the same energy in the data's units
(``scale_free``) on MNIST pairs of different classes, judged by the OOD detectors of RESULTS §5.

    PYTHONPATH=../benchmarks python probe_path_scales.py --scales-only \
        --model /work/runs/joint_d8/bundle.safetensors
    PYTHONPATH=../benchmarks python probe_path_scales.py --n 100 \
        --model /work/runs/joint_d8/bundle.safetensors slerp label_free scale_free
Variants: ``slerp``, ``label_free[,key=value...]``, ``scale_free[,key=value...]`` (keys of the
presets: density_weight, cycle_weight, jump_weight, jump_power; and of the optimiser: it =
iterations, lr, tol; coarse=T₀: optimise at T₀ first, subdivide each segment by SLERP to T = 32,
then run ``it`` iterations). ``--pairs dev`` (default) tunes on
the dev pairs of path_optimizer_sweep.py; ``--pairs final`` the 1 000 evaluation pairs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from evaluation_baselines import MNIST
from path_optimizer_sweep import pair_set

from latentnav.aae import AAE
from latentnav.data import load_mnist
from latentnav.interpolation import interpolate
from latentnav.metrics import ood_detector, reference_classifier
from latentnav.navigation import Navigator
from latentnav.navigation.energy import label_free
from latentnav.navigation.scales import path_scales, scale_free


def load_model(path: str) -> AAE:
    if path.endswith("bundle.safetensors"):
        from latentnav.joint import load_bundle

        return load_bundle(path)[0].eval()
    return AAE.load(path).eval()


def parse(spec: str) -> tuple[str, dict[str, float]]:
    name, *items = spec.split(",")
    return name, {k: float(v) for k, v in (item.split("=") for item in items)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("variants", nargs="*")
    p.add_argument("--model", required=True, help="an AAE with a compass, or a bundle")
    p.add_argument("--pairs", choices=("dev", "final"), default="dev")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--scale-images", type=int, default=10_000)
    p.add_argument("--scales-only", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    aae = load_model(args.model)
    train, test = load_mnist(MNIST, "train"), load_mnist(MNIST, "test")
    start = time.perf_counter()
    scales = path_scales(aae, aae.compass, train.images[: args.scale_images])
    print(f"d = {aae.latent_dim}: {scales} ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.scales_only:
        return
    ia, ib = pair_set(test.labels, args.pairs, args.n)
    with torch.no_grad():
        za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    detector = ood_detector(
        reference_classifier(train.images, train.labels), train.images, test.images
    )
    rows = {}
    for spec in args.variants:
        name, kw = parse(spec)
        if name == "slerp":
            nav = Navigator(aae, "slerp", steps=32)
        opt = {k: kw.pop(k) for k in ("it", "lr", "tol", "coarse") if k in kw}
        if name != "slerp":
            if name == "label_free":
                energy = label_free(aae, aae.compass, **kw)
            else:
                energy = scale_free(aae, aae.compass, scales, **kw)
            fields = {"iterations": int(opt.get("it", 100)), "lr": opt.get("lr", 0.05),
                      "tol": opt.get("tol", 1e-4)}  # fmt: skip
            nav = Navigator(aae, "optimizer", energy=energy, steps=32, **fields)
        start = time.perf_counter()
        if "coarse" in opt:
            t0 = int(opt["coarse"])
            coarse = Navigator(aae, "optimizer", energy=energy, steps=t0, iterations=100)
            zc = coarse.path(za, zb).z
            sub = 32 // t0
            start_path = torch.cat(
                [interpolate(zc[:, k], zc[:, k + 1], sub)[:, :-1] for k in range(t0)]
                + [zc[:, -1:]], 1)  # fmt: skip
            path = nav.method.from_start(start_path, za, zb)
        else:
            path = nav.path(za, zb)
        seconds = time.perf_counter() - start
        r = path.report(aae, detector=detector)
        rows[spec] = {"union OOD": r.ood_rate["union"], "step max": r.step_max,
                      "≤1 class change": r.at_most_one_change, "seconds": seconds}  # fmt: skip
        print(f"{spec:50s} " + "  ".join(f"{k} {v:.4f}" for k, v in rows[spec].items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"d": aae.latent_dim, "scales": scales.to_dict(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
