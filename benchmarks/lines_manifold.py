"""Navigation on the exact-manifold "lines" data (DESIGN.md §7; issue 12, evaluation part).

Trains an AAE on the generated lines set (``latentnav.runs.train_aae_run``, the code path of
``latentnav train-aae --data lines``), fits the compass (``latentnav.compass.fit_compass``), then
runs every registered navigation method that needs no diffusion model (lerp, slerp, stepwise with
the density compass, optimizer with the label_free preset, graph over the encoded training images,
``graph/data``, the graph over the training images themselves with its bank inverted, and
``auto`` (the data graph where its chain resolves T frames, else the optimiser); others
are listed as skipped with the reason) on test pairs at least ``--min-angle`` degrees apart,
and judges the decoded frames with ``LineManifold``: off-manifold share of interior frames
(threshold: the ``--percentile`` of the distances of reconstructions of test images), share of paths
monotone along the shorter arc, ACAI smoothness, largest angular step. No navigator setting is tuned
here.

    python benchmarks/lines_manifold.py --smoke --out /tmp/lines_smoke          # ~10 s
    python benchmarks/lines_manifold.py --latent-dim 2 --epochs 10 --compass-steps 2000 \
        --pairs 100 --threads 1 --out /tmp/lines_d2                               # 535 s

Measured with the second command (AAE 1000-1000 MLP, d = 2, 10 epochs: D_z held-out accuracy
0.51, compass 0.60; threshold 0.882 = p99 of test reconstructions, whose angle error has median
0.09°; 100 pairs ≥ 30° apart, T = 32):

    method     off-manifold  monotone  ACAI smoothness  largest step   seconds
    lerp          0.652        0.13        1.216           119.1°         0.0
    slerp         0.629        0.15        1.116           108.8°         0.0
    stepwise      0.582        0.09        1.128           110.3°         1.0   (density compass)
    optimizer     0.635        0.09        1.076           107.4°       123.2   (label_free preset)

SLERP's monotone share against the back-step tolerance: 0.12 at 0°, 0.15 at 0.2° (the default
2δ), 0.38 at 1°, 0.54 at 5°: 39 of the 85 failing paths step back by less than 5° only, still
far more than the estimator's error (about δ/2 = 0.05° on ideal images): the decoded line turns
back.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from common import base_parser, parse_args, write_json

from latentnav.aae import AAEConfig
from latentnav.compass import CompassConfig, fit_compass
from latentnav.data import load_dataset
from latentnav.metrics import LineManifold, ManifoldReport, wrap_angle
from latentnav.navigation import METHODS, DensityCompass, make_method
from latentnav.runs import RunConfig, train_aae_run
from latentnav.training import TrainConfig

SMOKE = {"train": 500, "test": 100, "epochs": 1, "pairs": 4, "hidden": "32", "disc_hidden": "16",
         "compass_steps": 20, "grid": 360, "steps": 8}  # fmt: skip


def method_options(name: str, aae: torch.nn.Module, steps: int) -> dict[str, Any]:
    """The options each method gets: T, and the compass where the method takes one (the graph
    takes its bank from ``aae.latent_bank``, which the training run stored)."""
    if name == "stepwise":
        return {"steps": steps, "compass": DensityCompass(aae.compass, aae.prior)}
    if name == "optimizer":  # energy defaults to label_free(aae, compass)
        return {"steps": steps, "compass": aae.compass}
    return {"steps": steps}


def test_pairs(angles: torch.Tensor, n: int, min_angle: float, seed: int) -> torch.Tensor:
    """``(n, 2)`` indices of test images whose angles are at least ``min_angle`` rad apart."""
    g = torch.Generator().manual_seed(seed)
    candidates = torch.randint(len(angles), (20 * n + 100, 2), generator=g)
    arc = wrap_angle(angles[candidates[:, 1]] - angles[candidates[:, 0]]).abs()
    chosen = candidates[arc >= min_angle][:n]
    if len(chosen) < n:
        raise ValueError(f"found only {len(chosen)} pairs ≥ {min_angle} rad apart, asked {n}")
    return chosen


@torch.no_grad()
def decode_paths(aae: torch.nn.Module, z: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """Latent paths (B, T+1, d) → frames (B, T+1, C, H, W) in [0, 1]."""
    flat = torch.cat([aae.decode(part) for part in z.flatten(0, 1).split(batch)]).clamp(0, 1)
    return flat.view(*z.shape[:2], *flat.shape[1:])


def run_one(args: argparse.Namespace, latent_dim: int) -> dict[str, Any]:
    spec = f"lines:size={args.size},train={args.train},test={args.test},seed={args.seed}"
    widths = [tuple(int(w) for w in s.split(",")) for s in (args.hidden, args.disc_hidden)]
    model = AAEConfig(latent_dim=latent_dim, hidden=widths[0], disc_hidden=widths[1])
    out = Path(args.out) / f"d{latent_dim}"
    config = RunConfig(  # the compass is fitted below, with this script's settings
        spec, str(out), "cpu", model, TrainConfig(epochs=args.epochs, seed=args.seed), None
    )
    start = time.perf_counter()
    aae, run_metrics = train_aae_run(config, progress=False)
    train_s = time.perf_counter() - start
    aae.eval()
    train, test = load_dataset(spec, "train"), load_dataset(spec, "test")
    compass_config = CompassConfig()
    if args.compass_steps:
        compass_config = replace(
            compass_config, fit=replace(compass_config.fit, max_steps=args.compass_steps)
        )
    start = time.perf_counter()
    compass, compass_report = fit_compass(aae, train.images, test.images, compass_config)
    aae.compass = compass
    compass_s = time.perf_counter() - start

    manifold = LineManifold(args.size, grid=args.grid)
    with torch.no_grad():
        recon = decode_paths(aae, aae.encode(test.images)[:, None])[:, 0]
    threshold = manifold.threshold_from(recon, args.percentile)
    theta_recon, _ = manifold.project(recon)
    recon_error = wrap_angle(theta_recon - test.angles).abs() * (180 / math.pi)

    pairs = test_pairs(test.angles, args.pairs, math.radians(args.min_angle), args.seed + 1)
    with torch.no_grad():
        z_a, z_b = aae.encode(test.images[pairs[:, 0]]), aae.encode(test.images[pairs[:, 1]])
    targets = (test.angles[pairs[:, 0]], test.angles[pairs[:, 1]])
    reports: dict[str, ManifoldReport] = {}
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    runs = [(name, name, method_options(name, aae, args.steps)) for name in METHODS]
    runs = [(a, b, {**o, "images": train.images} if b == "auto" else o) for a, b, o in runs]
    # the graph over the images themselves, its bank inverted (RESULTS §6.13)
    runs.append(("graph/data", "graph", {"steps": args.steps, "images": train.images}))
    for label, name, options in runs:
        try:
            method = make_method(name, aae, **options)
        except (ValueError, TypeError, ImportError) as e:
            skipped[label] = str(e)
            continue
        start = time.perf_counter()
        path = method.path(z_a, z_b)
        seconds[label] = time.perf_counter() - start
        frames = decode_paths(aae, path.z)
        reports[label] = ManifoldReport.from_paths(manifold, frames, threshold, targets=targets)

    print(
        f"\n== lines, d = {latent_dim}: {len(pairs)} test pairs ≥ {args.min_angle}°, "
        f"T = {args.steps}, threshold {threshold:.4g} (p{args.percentile:g} of reconstructions)"
    )
    print(ManifoldReport.compare(reports))
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    return {
        "latent_dim": latent_dim,
        "data": spec,
        "train_seconds": train_s,
        "compass_seconds": compass_s,
        "aae_test": run_metrics["test"],
        "compass": compass_report,
        "threshold": threshold,
        "reconstruction_angle_error_deg": {
            "median": float(recon_error.median()),
            "p99": float(torch.quantile(recon_error, 0.99)),
        },
        "methods": ManifoldReport.compare_dict(reports),
        "method_seconds": seconds,
        "skipped": skipped,
    }


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    p = base_parser(__doc__, out_required=True, threads=1, data=False)
    p.add_argument("--latent-dim", type=int, nargs="+", default=[2], help="one run per d")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--train", type=int, default=10_000)
    p.add_argument("--test", type=int, default=2_000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden", default="1000,1000")
    p.add_argument("--disc-hidden", default="1000,1000")
    p.add_argument("--compass-steps", type=int, default=0, help="0: CompassConfig's default")
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--steps", type=int, default=32, help="T")
    p.add_argument("--min-angle", type=float, default=30.0, help="degrees")
    p.add_argument("--percentile", type=float, default=99.0)
    p.add_argument("--grid", type=int, default=3600)
    args = parse_args(p, argv)
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_options(argv)
    start = time.perf_counter()
    results = [run_one(args, d) for d in args.latent_dim]
    summary = {"args": vars(args), "runs": results, "seconds": time.perf_counter() - start}
    path = Path(args.out) / "lines_manifold.json"
    write_json(path, summary)
    print(f"\nwrote {path} ({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
