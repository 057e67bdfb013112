"""Navigator variants on MNIST (issue 4, item 2): PathReport.compare of LERP, SLERP and the
stepwise navigator (objective × compass × step control × with/without a calibrated compass).

    python benchmarks/navigator_mnist.py --aae benchmarks/out/aae_d8/aae.safetensors \
        --out benchmarks/out/nav_d8 --threads 1

Writes OUT/navigator.json, OUT/paths_table.txt, OUT/compass.safetensors and a strip of decoded
paths per method (same pairs in every strip).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from common import (
    SMOKE_PAIRS,
    SMOKE_STEPS,
    base_parser,
    different_class_pairs,
    judge,
    load_aae,
    load_splits,
    parse_args,
    tiny_compass,
    write_json,
)

from latentnav.aae import AAE
from latentnav.compass import CompassConfig, fit_compass, load_compass, save_compass
from latentnav.latent_path import LatentPath
from latentnav.metrics import PathReport, reconstruction_floor
from latentnav.navigator import Navigator, NavigatorConfig
from latentnav.viz import image_strip, save_figure


def variants(steps: int) -> dict[str, tuple[NavigatorConfig, bool]]:
    """name → (config, use the calibrated compass)."""
    base = NavigatorConfig(steps=steps)
    v = {
        "lerp": (NavigatorConfig(steps=steps, proposal="lerp", max_corrections=0), False),
        "slerp": (NavigatorConfig(steps=steps, max_corrections=0), False),
        "seed: prob, plain η=0.1, D_z": (
            NavigatorConfig(steps=steps, objective="prob", step_control="plain", eta=0.1),
            False,
        ),
        "logit, normalized η=0.05, D_z": (base, False),
        "logit, plain η=1, D_z": (
            NavigatorConfig(steps=steps, step_control="plain", eta=1.0),
            False,
        ),
        "prob, plain η=0.1, compass": (
            NavigatorConfig(steps=steps, objective="prob", step_control="plain", eta=0.1),
            True,
        ),
        "logit, normalized η=0.05, compass": (base, True),
        "logit, clipped η=0.1, compass": (
            NavigatorConfig(steps=steps, step_control="clipped", eta=0.1, max_step=0.1),
            True,
        ),
        "density, normalized η=0.05, D_z": (NavigatorConfig(steps=steps, compass="density"), False),
        "density, normalized η=0.05, compass": (
            NavigatorConfig(steps=steps, compass="density"),
            True,
        ),
    }
    return v


# --smoke: one variant per code path (plain SLERP, a D_z correction, the calibrated compasses).
SMOKE_VARIANTS = ("slerp", "logit, normalized η=0.05, D_z", "density, normalized η=0.05, compass")


def stochman_geodesic(aae: AAE, za: torch.Tensor, zb: torch.Tensor, steps: int) -> LatentPath:
    """The public baseline: stochman's connecting geodesic under the decoder's pull-back metric
    (cubic spline minimising the decoded curve energy; optional dependency ``stochman``)."""
    from stochman.manifold import EmbeddedManifold

    decoder = aae.decoder

    class Decoded(EmbeddedManifold):
        def embed(self, c, jacobian=False):
            return decoder(c.reshape(-1, c.shape[-1])).reshape(*c.shape[:-1], -1)

    states = [p.requires_grad for p in decoder.parameters()]
    decoder.requires_grad_(False)
    try:
        chunks = []
        for a, b in zip(za.split(250), zb.split(250), strict=True):
            curve, _ = Decoded().connecting_geodesic(a, b)
            with torch.no_grad():
                chunks.append(curve(torch.linspace(0, 1, steps + 1)).detach())
    finally:
        for p, g in zip(decoder.parameters(), states, strict=True):
            p.requires_grad_(g)
    z = torch.cat(chunks)
    z[:, 0], z[:, -1] = za, zb  # the spline's endpoints are exact up to rounding
    with torch.no_grad():
        d_score = aae.discriminate(z.flatten(0, 1)).view(z.shape[:2])
    return LatentPath(z, {"d_score": d_score, "accepted": (d_score - 0.5).abs() < 0.1})


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, out_required=True)
    p.add_argument("--aae", help="trained AAE (required unless --smoke: an untrained tiny one)")
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--only", nargs="*", help="run only these variant names")
    p.add_argument(
        "--no-temperature", action="store_true", help="compass without temperature scaling"
    )
    p.add_argument(
        "--stochman", action="store_true", help="add stochman's geodesic (pip install stochman)"
    )
    args = parse_args(p, argv)
    if args.smoke:
        args.pairs, args.steps = SMOKE_PAIRS, SMOKE_STEPS
        args.only = args.only or list(SMOKE_VARIANTS)
    elif not args.aae:
        p.error("--aae is required (unless --smoke)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = load_splits(args)
    _, detector = judge(train, test, args.smoke)
    aae = load_aae(args)
    floor = reconstruction_floor(detector, aae.reconstruct, test.images)

    # Calibrated compass: refit on the frozen encoder (first 55 000 train images), validated on
    # the last 5 000.
    compass_path = out / "compass.safetensors"
    compass_report = None
    if compass_path.is_file():
        compass = load_compass(compass_path)
    else:
        start = time.perf_counter()
        if args.smoke:
            compass, compass_report = tiny_compass(aae, train.images)
        else:
            compass, compass_report = fit_compass(
                aae,
                train.images[:55_000],
                train.images[55_000:],
                CompassConfig(temperature_scaling=not args.no_temperature),
            )
        compass_report["seconds"] = time.perf_counter() - start
        save_compass(compass, compass_path)
        print(
            "compass:",
            json.dumps({k: v for k, v in compass_report.items() if "calibration" not in k}),
            flush=True,
        )
        for key in ("validation_calibration", "aae_discriminator_calibration"):
            print(f"  {key}: ECE {compass_report[key]['ece']:.4f}", flush=True)

    ia, ib = different_class_pairs(test.labels, args.pairs, args.seed)
    with torch.no_grad():
        za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    reports, timings = {}, {}
    runs = dict(variants(args.steps))
    if args.stochman:
        runs["stochman geodesic (pull-back metric)"] = (NavigatorConfig(steps=args.steps), None)
    for name, (config, calibrated) in runs.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        if calibrated is None:
            path = stochman_geodesic(aae, za, zb, args.steps)
        else:
            nav = Navigator(aae, config, compass=compass if calibrated else None)
            path = nav.path(za, zb)
        timings[name] = time.perf_counter() - start
        frames = path.decode(aae)
        reports[name] = PathReport.from_paths(
            frames,
            detector=detector,
            latents=path.z,
            scores=path.d_score,
            target_latents=zb,
            target_images=test.images[ib],
            floor=floor,
            eps=config.eps,
        )
        reports[name].flagged_pairs = float(path.flagged.float().mean())
        print(
            f"{name}: {timings[name]:.1f} s, union OOD {reports[name].ood_rate['union']:.4f}, "
            f"step max {reports[name].step_max:.3f}, "
            f"≤1 change {reports[name].at_most_one_change:.3f}, "
            f"flagged pairs {reports[name].flagged_pairs:.3f}",
            flush=True,
        )
        safe = "".join(c if c.isalnum() else "_" for c in name)
        save_figure(image_strip(frames[:8], max_rows=8), out / f"strip_{safe}.png")
    table = PathReport.compare(reports)
    print(table)
    result = {
        "paths": PathReport.compare_dict(reports),
        "flagged_pairs": {k: r.flagged_pairs for k, r in reports.items()},
        "seconds": timings,
        "compass": compass_report,
        "floor": floor,
        "pairs": len(ia),
        "steps": args.steps,
    }
    write_json(out / "navigator.json", result)
    (out / "paths_table.txt").write_text(table + "\n")


if __name__ == "__main__":
    main()
