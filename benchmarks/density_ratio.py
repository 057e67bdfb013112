"""Density-ratio fidelity (DESIGN.md §2): a discriminator trained on samples of two known 2-D
densities p (label 1) and q (label 0) has a logit that tracks the true log p − log q.

Pearson r between the logit and the exact log-ratio, on fresh points where both densities exceed
their own 5th percentile, for several pairs and seeds.

    python benchmarks/density_ratio.py --out benchmarks/out/density_ratio
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import base_parser, parse_args, write_json

from latentnav.data.toys import toy_distribution
from latentnav.density_ratio import RatioFitConfig, density_ratio_fidelity
from latentnav.priors import GaussianMixture, StandardNormal


def pairs() -> dict[str, tuple]:
    ring = toy_distribution("ring8")
    wide_ring = GaussianMixture(ring.means, stds=0.4)
    moons = toy_distribution("two_moons")
    wide_moons = GaussianMixture(moons.means, stds=0.3)
    return {
        "ring8 (std 0.4) vs N(0, 1.5² I)": (
            wide_ring,
            GaussianMixture(torch.zeros(1, 2), stds=1.5),
        ),
        "N(0, I) vs 3-component circle mixture": (
            StandardNormal(2),
            GaussianMixture.on_circle(k=3, radius=1.5, radial_std=0.7, tangential_std=0.7),
        ),
        "two moons (std 0.3) vs N(0, 2² I)": (
            wide_moons,
            GaussianMixture(torch.zeros(1, 2), stds=2.0),
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__, out="benchmarks/out/density_ratio", threads=1, data=False)
    parser.add_argument("--seeds", type=int, default=5, help="seeds --seed … --seed + SEEDS − 1")
    parser.add_argument("--n", type=int, default=20_000)
    args = parse_args(parser, argv)
    steps = 2000
    if args.smoke:  # one seed, few points and steps
        args.seeds, args.n, steps = 1, 500, 30
    results: dict[str, list[dict]] = {}
    for name, (p, q) in pairs().items():
        results[name] = []
        for seed in range(args.seed, args.seed + args.seeds):
            config = RatioFitConfig(
                max_steps=steps, batch_size=512, eval_every=min(100, steps), patience=5, seed=seed
            )
            r = density_ratio_fidelity(p, q, args.n, config, hidden=(64, 64))
            results[name].append(r)
            print(
                f"{name:42s} seed {seed}: pearson {r['pearson']:.3f}  "
                f"spread {r['truth_spread']:.2f} nats  held-out acc {r['heldout_accuracy']:.3f}"
            )
    write_json(Path(args.out) / "density_ratio.json", results)


if __name__ == "__main__":
    main()
