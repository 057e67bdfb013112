"""Benchmark: the yardsticks of DESIGN.md §7 on full MNIST and one trained AAE (issue 3).

    python benchmarks/evaluation_baselines.py --aae benchmarks/out/aae_d8/aae.safetensors \
        --out benchmarks/out/eval_d8 --threads 1

Prints (and writes to OUT/evaluation.json):
- FID / inception-style score / precision-recall-density-coverage (k = 3, 5) in the reference
  feature space for real test vs real train (the floor), decoded prior samples and reconstructions;
- OOD-frame rates (each detector and the union) and smoothness of LERP and SLERP paths between
  ``--pairs`` test pairs of different classes, beside the reconstruction floor;
- OUT/flagged_<detector>.png: frames of those paths each detector flags, to look at.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from common import (  # noqa: F401  (experiments/ import MNIST from here)
    MNIST,
    SMOKE_PAIRS,
    SMOKE_STEPS,
    base_parser,
    decode,
    different_class_pairs,
    judge,
    load_aae,
    load_splits,
    parse_args,
    write_json,
)

from latentnav.interpolation import interpolate
from latentnav.metrics import (
    DETECTORS,
    FeatureExtractor,
    PathReport,
    fid,
    inception_score,
    precision_recall,
    reconstruction_floor,
)
from latentnav.viz import image_grid, image_strip, save_figure


def sample_metrics(name: str, real_f, real_p, fake_f, fake_p) -> dict:
    prdc = precision_recall(real_f, fake_f, ks=(3, 5))
    row = {"fid": fid(real_f, fake_f), "is": inception_score(fake_p)[0]}
    for k, r in prdc.items():
        row |= {f"precision@{k}": r.precision, f"recall@{k}": r.recall}
        row |= {f"density@{k}": r.density, f"coverage@{k}": r.coverage}
    print(f"{name:>16}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, out_required=True)
    p.add_argument("--aae", help="trained AAE (required unless --smoke: an untrained tiny one)")
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--n", type=int, default=10_000, help="images per set for sample metrics")
    args = parse_args(p, argv)
    if args.smoke:
        args.pairs, args.steps, args.n = SMOKE_PAIRS, SMOKE_STEPS, 200
    elif not args.aae:
        p.error("--aae is required (unless --smoke)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train, test = load_splits(args)
    ref, detector = judge(train, test, args.smoke)
    acc = ref.accuracy(test.images, test.labels)
    print(f"reference classifier test accuracy {100 * acc:.2f}%", flush=True)
    aae = load_aae(args)
    g = torch.Generator().manual_seed(args.seed)
    n = min(args.n, len(test))

    # Sample metrics in the reference feature space.
    real = test.images[:n]
    sets = {
        "train (floor)": train.images[torch.randperm(len(train), generator=g)[:n]],
        "prior samples": decode(aae, aae.prior.sample(n, generator=g)),
        "reconstructions": decode(aae, torch.cat([aae.encode(x) for x in real.split(2000)])),
    }
    real_f, real_p = ref.features(real), ref.probs(real)
    samples = {
        k: sample_metrics(k, real_f, real_p, ref.features(v), ref.probs(v)) for k, v in sets.items()
    }
    extractor = FeatureExtractor(ref.features, ref.num_features)
    m = min(n, 2000)
    check = fid(real[:m], sets["train (floor)"][:m], extractor)
    print(f"FID via torchmetrics image path ({m} vs {m} train): {check:.3f}")
    save_figure(image_grid(sets["prior samples"][:100], 10, "prior samples"), out / "prior.png")

    # OOD detectors: banks from train, thresholds from real test; floor on reconstructions.
    floor = reconstruction_floor(detector, aae.reconstruct, test.images)
    print("floor (reconstructions):", {k: round(v, 4) for k, v in floor.items()})

    # LERP and SLERP between test pairs of different classes.
    ia, ib = different_class_pairs(test.labels, args.pairs, args.seed)
    with torch.no_grad():
        za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    reports, flagged = {}, {}
    for name in ("lerp", "slerp"):
        z = interpolate(za, zb, args.steps, name)
        frames = decode(aae, z.flatten(0, 1)).view(*z.shape[:2], *aae.image_shape)
        with torch.no_grad():
            scores = aae.discriminate(z.flatten(0, 1)).view(z.shape[:2])
        reports[name] = PathReport.from_paths(
            frames,
            detector=detector,
            latents=z,
            scores=scores,
            target_latents=zb,
            target_images=test.images[ib],
            floor=floor,
        )
        flat = frames.flatten(0, 1)
        flags = detector.flags(flat)
        flagged[name] = {k: flat[v] for k, v in flags.items()}
        save_figure(image_strip(frames, max_rows=12), out / f"{name}_paths.png")
    table = PathReport.compare(reports)
    print(table)
    for det in (*DETECTORS, "union"):
        frames = torch.cat([flagged["lerp"][det], flagged["slerp"][det]])
        if len(frames):
            pick = frames[torch.randperm(len(frames), generator=g)[:64]]
            save_figure(
                image_grid(pick, 8, f"flagged by {det} ({len(frames)})"), out / f"flagged_{det}.png"
            )
    result = {
        "reference_accuracy": acc,
        "samples": samples,
        "floor": floor,
        "paths": PathReport.compare_dict(reports),
        "pairs": len(ia),
        "steps": args.steps,
        "aae": str(args.aae),
        "seconds": time.perf_counter() - start,
    }
    write_json(out / "evaluation.json", result)
    (out / "paths_table.txt").write_text(table + "\n")
    print(f"done in {result['seconds']:.0f} s → {out}")


if __name__ == "__main__":
    main()
