"""Probe (issue 12, RESULTS 6.13): data-graph paths on the exact-manifold lines data. A k-NN graph
over the encoded training images (latent space), edge cost = decoded-pixel distance^p, Dijkstra
from z_a to z_b, resampled to T = 32 at equal decoded arc length; judged by ``LineManifold`` on
the pairs of ``benchmarks/lines_manifold.py`` (seed + 1, ≥ 30° apart).

    cd experiments; PYTHONPATH=../benchmarks python probe_lines_graph.py \
        --aae /work/runs/lines_d8/d8/aae.safetensors slerp graph,k=10,p=2 graph,k=10,p=1
Variant options: any of ``GraphPath``'s (k, power, neighbours, snap, hop, invert); keep=q: the
bank without the images above the q-th percentile of reconstruction error; data=1: the graph over
the training images themselves (``images=``, its bank inverted above the ``invert`` quantile).
``navigator``: ``Navigator(aae)`` with no data, after ``attach_data_graph(aae, train)`` (what
``latentnav train-aae`` stores) unless the checkpoint has it.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from lines_manifold import decode_paths, test_pairs

from latentnav.aae import AAE
from latentnav.data import load_dataset
from latentnav.metrics import LineManifold, ManifoldReport, wrap_angle
from latentnav.navigation import Navigator, make_method
from latentnav.navigation.graph import attach_data_graph, data_bank, has_data_graph


def parse_variant(spec: str) -> tuple[str, dict]:
    name, *rest = spec.split(",")
    opts = {}
    for item in rest:
        key, value = item.split("=")
        if value.isdigit():
            opts[key] = int(value)
        else:
            try:
                opts[key] = float(value)
            except ValueError:
                opts[key] = value
    return name, opts


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--aae", required=True)
    p.add_argument("--data", default="lines:size=32,train=10000,test=2000,seed=0")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compass-steps", type=int, default=0, help="> 0: fit a compass (optimizer)")
    p.add_argument("variants", nargs="+")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    aae = AAE.load(args.aae).eval()
    train, test = load_dataset(args.data, "train"), load_dataset(args.data, "test")
    manifold = LineManifold(32)
    with torch.no_grad():
        bank = aae.encode(train.images)
        recon = decode_paths(aae, aae.encode(test.images)[:, None])[:, 0]
    threshold = manifold.threshold_from(recon, 99.0)
    pairs = test_pairs(test.angles, args.pairs, math.radians(30), args.seed + 1)
    with torch.no_grad():
        z_a, z_b = aae.encode(test.images[pairs[:, 0]]), aae.encode(test.images[pairs[:, 1]])
    targets = (test.angles[pairs[:, 0]], test.angles[pairs[:, 1]])
    train_theta, train_dist = manifold.project(decode_paths(aae, bank[:, None])[:, 0])
    err = wrap_angle(train_theta - train.angles).abs() * 180 / math.pi
    off = (train_dist > threshold).float().mean()
    print(f"threshold {threshold:.4f}; train recon off-manifold {off:.3f}, err {err.median():.2f}°")
    if args.compass_steps:
        from dataclasses import replace

        from latentnav.compass import CompassConfig, fit_compass

        cc = CompassConfig()
        cc = replace(cc, fit=replace(cc.fit, max_steps=args.compass_steps))
        aae.compass, report = fit_compass(aae, train.images, test.images, cc)
        print(f"compass held-out accuracy {report['heldout_accuracy']:.3f}", flush=True)
    reports = {}
    for spec in args.variants:
        name, opts = parse_variant(spec)
        if name == "best":  # per pair the lowest label_free energy: opt(SLERP), opt(graph), graph
            start = time.perf_counter()
            opt = make_method("optimizer", aae, steps=32)
            graph = make_method("graph", aae, bank=bank, steps=32).path(z_a, z_b).z
            candidates = [opt.path(z_a, z_b), opt.from_start(graph, z_a, z_b)]
            zero = make_method("optimizer", aae, steps=32, iterations=0)
            candidates.append(zero.from_start(graph, z_a, z_b))
            energy = torch.stack([c.records["energy"] for c in candidates])
            pick = energy.argmin(0)
            print("picked (opt slerp, opt graph, graph):", torch.bincount(pick, minlength=3))
            z = torch.stack([c.z for c in candidates])[pick, torch.arange(len(pick))]
            for label, c in zip(("opt(slerp)", "opt(graph)", "graph"), candidates, strict=True):
                reports[label] = ManifoldReport.from_paths(
                    manifold, decode_paths(aae, c.z), threshold, targets=targets
                )
            reports[spec] = ManifoldReport.from_paths(
                manifold, decode_paths(aae, z), threshold, targets=targets
            )
            print(f"{spec}: {time.perf_counter() - start:.1f} s", flush=True)
            continue
        if name == "navigator":  # Navigator(aae) on a checkpoint that stores its data graph
            start = time.perf_counter()
            if not has_data_graph(aae):
                attach_data_graph(aae, train.images)
            print(f"{spec}: data graph {time.perf_counter() - start:.1f} s", flush=True)
            start = time.perf_counter()
            path = Navigator(aae, **opts).path(z_a, z_b)
            print(f"{spec}: {int(path.records['from_data'].sum())} pairs from the data graph, "
                  f"{time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
            reports[spec] = ManifoldReport.from_paths(
                manifold, decode_paths(aae, path.z), threshold, targets=targets
            )
            continue
        if name == "auto":  # the data graph where its chain resolves T, else the optimiser
            opts["images"] = train.images
        if name.startswith("graph"):
            pct = opts.pop("keep", 100.0)
            if opts.pop("data", 0):  # the graph over the images themselves, its bank inverted
                opts["images"] = train.images
            else:
                opts["bank"] = bank if pct == 100 else data_bank(aae, train.images, pct)
        start = time.perf_counter()
        method = make_method(name, aae, steps=32, **opts)
        path = method.path(z_a, z_b)
        s = time.perf_counter() - start
        if "from_data" in path.records:
            print(f"{spec}: {int(path.records['from_data'].sum())} pairs from the data graph")
        reports[spec] = ManifoldReport.from_paths(
            manifold, decode_paths(aae, path.z), threshold, targets=targets
        )
        print(f"{spec}: {s:.1f} s", flush=True)
    print(ManifoldReport.compare(reports))


if __name__ == "__main__":
    main()
