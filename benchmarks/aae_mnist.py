"""AAE on full MNIST: held-out reconstruction, D_z accuracy, MMD², wall time, Parzen log-likelihood.

Parzen protocol of Makhzani et al. (2015), Table 1: a Gaussian Parzen window on 10 000 decoded prior
samples, σ chosen by the mean log-likelihood of validation images, reported on the 10 000 test
images (mean ± standard error, nats).

    python benchmarks/aae_mnist.py --latent-dim 8 --prior normal --epochs 15 --threads 1 \
        --out benchmarks/out/aae_d8
    python benchmarks/aae_mnist.py --latent-dim 2 --prior mixture --epochs 10 --threads 1 \
        --hidden 512,512 --disc-hidden 256,256 --out benchmarks/out/aae_d2_mix
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from common import (
    SMOKE_COMPASS,
    base_parser,
    data_path,
    load_splits,
    parse_args,
    smoke_mnist,
    write_json,
)

from latentnav.aae import AAEConfig
from latentnav.metrics.samples import parzen_evaluate
from latentnav.runs import RunConfig, train_aae_run
from latentnav.training import TrainConfig

# --smoke: the first images of the embedded subset, one epoch of narrow MLPs, a small Parzen window.
SMOKE = {"epochs": 1, "hidden": "32", "disc_hidden": "16", "parzen_samples": 200,
         "parzen_validation": 200}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, out_required=True)
    p.add_argument("--latent-dim", type=int, default=8)
    p.add_argument("--prior", default="normal")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", default="1000,1000")
    p.add_argument("--disc-hidden", default="1000,1000")
    p.add_argument("--parzen-samples", type=int, default=10_000)
    p.add_argument("--parzen-validation", type=int, default=2_000)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--gradient-penalty", type=float, default=TrainConfig.gradient_penalty)
    p.add_argument("--lr-disc", type=float, default=TrainConfig.lr_discriminator)
    p.add_argument("--lr-gen", type=float, default=TrainConfig.lr_generator)
    args = parse_args(p, argv)
    if args.smoke:
        vars(args).update(SMOKE, accelerator="cpu")

    widths = [tuple(int(w) for w in s.split(",")) for s in (args.hidden, args.disc_hidden)]
    prior = {"name": args.prior} | ({"k": 10} if args.prior == "mixture" else {})
    model = AAEConfig(
        latent_dim=args.latent_dim, hidden=widths[0], disc_hidden=widths[1], prior=prior
    )
    config = RunConfig(
        data=f"mnist:{smoke_mnist(args.out) if args.smoke else data_path(args.data)}",
        out_dir=args.out,
        accelerator=args.accelerator,
        model=model,
        train=TrainConfig(
            epochs=args.epochs,
            seed=args.seed,
            gradient_penalty=args.gradient_penalty,
            lr_discriminator=args.lr_disc,
            lr_generator=args.lr_gen,
        ),
        **({"compass": SMOKE_COMPASS} if args.smoke else {}),
    )
    aae, metrics = train_aae_run(config, progress=False)

    # Parzen window on decoded prior samples; σ on held-out training images, reported on test.
    start = time.perf_counter()
    g = torch.Generator(aae.device).manual_seed(args.seed + 10)
    with torch.no_grad():
        z = aae.prior.sample(args.parzen_samples, generator=g)
        samples = torch.cat([aae.decoder(c) for c in z.split(1000)]).flatten(1).cpu()
    train, test = (split.images.flatten(1) for split in load_splits(args))
    # The last images of the training split, drawn without a seed dependence on the run's split.
    validation = train[-args.parzen_validation :]
    parzen = parzen_evaluate(samples, validation, test, progress=False)
    metrics["parzen"] = {
        "log_likelihood": parzen.mean,
        "std_error": parzen.stderr,
        "sigma": parzen.sigma,
        "n_samples": args.parzen_samples,
        "n_validation": len(validation),
        "n_test": len(test),
        "seconds": time.perf_counter() - start,
        "paper_aae": "340 ± 2 (Makhzani et al. 2015, Table 1)",
    }
    write_json(Path(args.out) / "benchmark.json", metrics)
    print(
        json.dumps({k: metrics[k] for k in ("wall_time_s", "device", "test", "parzen")}, indent=2)
    )


if __name__ == "__main__":
    main()
