"""d = 2 AAE with the 10-component circle-mixture prior on the embedded MNIST subset: the effect of
the discriminator's R1 gradient penalty on prior matching.

    python benchmarks/aae_mixture_d2.py GRADIENT_PENALTY EPOCHS OUT_DIR
    python benchmarks/aae_mixture_d2.py --smoke
"""

from __future__ import annotations

import json
from pathlib import Path

from common import base_parser, fit_embedded_aae, parse_args, write_json

from latentnav.aae import AAEConfig
from latentnav.runs import aae_figures
from latentnav.training import TrainConfig


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, threads=1, data=False)
    p.add_argument("gradient_penalty", nargs="?", type=float, default=TrainConfig.gradient_penalty)
    p.add_argument("epochs", nargs="?", type=int, default=12)
    p.add_argument("out_dir", nargs="?", help="the output folder (same as --out)")
    args = parse_args(p, argv)
    if args.smoke:
        args.epochs = 1
    out = args.out_dir or args.out
    if out is None:
        p.error("OUT_DIR (or --out) is required unless --smoke")
    config = AAEConfig(
        latent_dim=2, hidden=(512, 512), disc_hidden=(256, 256), prior={"name": "mixture", "k": 10}
    )
    train = TrainConfig(epochs=args.epochs, gradient_penalty=args.gradient_penalty)
    aae, dm, report, seconds = fit_embedded_aae(config, train, args.smoke, args.seed)
    aae_figures(aae, dm.test_data, Path(out))
    result = {"gradient_penalty": train.gradient_penalty, "epochs": train.epochs}
    result |= {"seconds": round(seconds), **{k: round(v, 3) for k, v in report.items()}}
    print(json.dumps(result))
    write_json(Path(out) / "aae_mixture_d2.json", result)


if __name__ == "__main__":
    main()
