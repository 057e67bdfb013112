"""Regularisation learning rates of the AAE on the embedded MNIST subset (d = 8, 512-wide MLPs).

python benchmarks/aae_lr_sweep.py LR_RECONSTRUCTION LR_DISCRIMINATOR LR_GENERATOR EPOCHS
python benchmarks/aae_lr_sweep.py 1e-3 5e-4 5e-4 8
python benchmarks/aae_lr_sweep.py --smoke
"""

from __future__ import annotations

import json
from pathlib import Path

from common import base_parser, fit_embedded_aae, parse_args, write_json

from latentnav.aae import AAEConfig
from latentnav.training import TrainConfig


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, threads=1, data=False)
    p.add_argument("lr_reconstruction", nargs="?", default="1e-3")
    p.add_argument("lr_discriminator", nargs="?", default="5e-4")
    p.add_argument("lr_generator", nargs="?", default="5e-4")
    p.add_argument("epochs", nargs="?", type=int, default=8)
    args = parse_args(p, argv)
    if args.smoke:
        args.epochs = 1
    lrs = [args.lr_reconstruction, args.lr_discriminator, args.lr_generator]
    lr_r, lr_d, lr_g = map(float, lrs)
    train = TrainConfig(
        epochs=args.epochs,
        lr_reconstruction=lr_r,
        lr_discriminator=lr_d,
        lr_generator=lr_g,
        # As measured for RESULTS.md §2, before the cosine decay and R1 penalty became defaults.
        lr_schedule="constant",
        gradient_penalty=0.0,
    )
    model = AAEConfig(latent_dim=8, hidden=(512, 512), disc_hidden=(256, 256))
    _, _, report, seconds = fit_embedded_aae(model, train, args.smoke, args.seed)
    result = {"lr": lrs, "epochs": train.epochs, "seconds": round(seconds)}
    result |= {k: round(v, 3) for k, v in report.items()}
    print(json.dumps(result))
    if args.out:
        write_json(Path(args.out) / "aae_lr_sweep.json", result)


if __name__ == "__main__":
    main()
