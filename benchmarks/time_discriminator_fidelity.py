"""Closed-form check of the time-dependent discriminator (DESIGN.md §5, issue 11 §2), long run.

Data and model are Gaussian mixtures (the pairs of tests/test_time_discriminator.py), VP SDE, so
ℓ*(z, t) = log p_t^data − log p_t^model is exact. Trains D_ψ on ``--n`` points of each and prints,
per time bucket, the held-out accuracy / ECE and log_ratio_fidelity on points of the data: Pearson
r(ℓ_ψ, ℓ*) and the relative gradient error √(Σ‖∇ℓ_ψ − ∇ℓ*‖² / Σ‖∇ℓ*‖²).

    PYTHONPATH=. python benchmarks/time_discriminator_fidelity.py --d 2   # ~3 min on one core
    PYTHONPATH=. python benchmarks/time_discriminator_fidelity.py --d 8
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from common import base_parser, parse_args, write_json

from latentnav.ratio_fidelity import MixtureLogRatio, log_ratio_fidelity, mixture_pair
from latentnav.sde import VPSDE
from latentnav.time_discriminator import (
    TimeDiscriminator,
    TimeDiscriminatorFitConfig,
    fit_time_discriminator,
)


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__, threads=1, data=False)
    parser.add_argument("--d", type=int, default=2)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=8_000)
    parser.add_argument("--batch", type=int, default=2_048)
    parser.add_argument("--hidden", type=int, default=128)
    args = parse_args(parser, argv)
    if args.smoke:
        args.n, args.steps, args.batch, args.hidden = 1000, 20, 256, 16
    data, model = mixture_pair(args.d)
    sde, g = VPSDE(), torch.Generator().manual_seed(args.seed)
    real, fake = data.sample(args.n, g), model.sample(args.n, g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        disc = TimeDiscriminator(args.d, (args.hidden, args.hidden), embed_dim=32)
    config = TimeDiscriminatorFitConfig(
        max_steps=args.steps, batch_size=args.batch, lr=2e-3, eval_every=100, patience=1000
    )
    start = time.perf_counter()
    report = fit_time_discriminator(disc, sde, real, fake, config)
    print(
        f"d = {args.d}: fit {time.perf_counter() - start:.0f} s, best step {report.best_step}, "
        f"held-out BCE {report.heldout_loss:.4f}, accuracy {report.heldout_accuracy:.3f}"
    )
    truth = MixtureLogRatio(data, model, sde)
    fidelity = log_ratio_fidelity(disc, sde, truth, data.sample(2000, g), 5, generator=g)
    print(f"{'t':>12s} {'acc':>6s} {'ECE':>6s} {'r':>6s} {'grad err':>9s} {'ℓ* std':>7s}")
    for b, f in zip(report.buckets, fidelity, strict=True):
        print(
            f"[{b['t_low']:.2f}, {b['t_high']:.2f}] {b['accuracy']:6.3f} {b['ece']:6.3f} "
            f"{f['pearson']:6.3f} {f['grad_rel_error']:9.3f} {f['truth_std']:7.3f}"
        )
    if args.out:
        rows = [b | f for b, f in zip(report.buckets, fidelity, strict=True)]
        write_json(Path(args.out) / f"time_discriminator_d{args.d}.json", {"buckets": rows})


if __name__ == "__main__":
    main()
