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

import argparse
import json
import time
from pathlib import Path

import torch

from latentnav.aae import AAE
from latentnav.checkpoint import atomic_path
from latentnav.data import load_mnist
from latentnav.interpolation import interpolate
from latentnav.metrics import (
    DETECTORS,
    FeatureExtractor,
    PathReport,
    fid,
    inception_score,
    ood_detector,
    precision_recall,
    reconstruction_floor,
    reference_classifier,
)
from latentnav.viz import image_grid, image_strip, save_figure

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"


def decode(aae: AAE, z: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([aae.decode(part) for part in z.split(batch)])


def sample_metrics(name: str, real_f, real_p, fake_f, fake_p) -> dict:
    prdc = precision_recall(real_f, fake_f, ks=(3, 5))
    row = {"fid": fid(real_f, fake_f), "is": inception_score(fake_p)[0]}
    for k, r in prdc.items():
        row |= {f"precision@{k}": r.precision, f"recall@{k}": r.recall}
        row |= {f"density@{k}": r.density, f"coverage@{k}": r.coverage}
    print(f"{name:>16}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    return row


def different_class_pairs(labels: torch.Tensor, n: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    a = torch.randperm(len(labels), generator=g)
    b = torch.randperm(len(labels), generator=g)
    keep = labels[a] != labels[b]
    return a[keep][:n], b[keep][:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--aae", required=True)
    p.add_argument("--mnist", default=str(MNIST))
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--n", type=int, default=10_000, help="images per set for sample metrics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train, test = load_mnist(args.mnist, "train"), load_mnist(args.mnist, "test")
    ref = reference_classifier(train.images, train.labels)
    acc = ref.accuracy(test.images, test.labels)
    print(f"reference classifier test accuracy {100 * acc:.2f}%", flush=True)
    aae = AAE.load(args.aae).eval()
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
    check = fid(real[:2000], sets["train (floor)"][:2000], extractor)
    print(f"FID via torchmetrics image path (2000 vs 2000 train): {check:.3f}")
    save_figure(image_grid(sets["prior samples"][:100], 10, "prior samples"), out / "prior.png")

    # OOD detectors: banks from train, thresholds from real test; floor on reconstructions.
    detector = ood_detector(ref, train.images, test.images)
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
    with atomic_path(out / "evaluation.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    (out / "paths_table.txt").write_text(table + "\n")
    print(f"done in {result['seconds']:.0f} s → {out}")


if __name__ == "__main__":
    main()
