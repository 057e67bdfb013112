"""``latentnav`` command line: ``demo`` and ``train-aae``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from latentnav.aae import AAEConfig
from latentnav.training import TrainConfig

__all__ = ["main", "build_parser"]

PRIORS = ("normal", "mixture", "swiss-roll")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated ints like 512,512: {text!r}"
        ) from err
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be ≥ 1: {text!r}")
    return widths


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text}")
    return value


def _add_training_args(p: argparse.ArgumentParser, defaults: dict) -> None:
    p.add_argument(
        "--data",
        default="mnist-embedded",
        help="dataset: 'mnist-embedded' (shipped subset), 'mnist:/path/mnist.npz', "
        "a .npz path, or an image folder (default: %(default)s)",
    )
    p.add_argument(
        "--latent-dim",
        type=_positive_int,
        default=defaults["latent_dim"],
        help="latent dimension d (default: %(default)s)",
    )
    p.add_argument(
        "--prior",
        choices=PRIORS,
        default=defaults["prior"],
        help="prior p(z) (default: %(default)s)",
    )
    p.add_argument(
        "--components",
        type=_positive_int,
        default=10,
        help="mixture components for --prior mixture (default: %(default)s)",
    )
    p.add_argument(
        "--family",
        choices=("mlp", "conv"),
        default="mlp",
        help="encoder/decoder family (default: %(default)s)",
    )
    p.add_argument(
        "--hidden",
        type=_widths,
        default=defaults["hidden"],
        help="MLP encoder/decoder widths, comma-separated (default: %(default)s)",
    )
    p.add_argument(
        "--disc-hidden",
        type=_widths,
        default=defaults["disc_hidden"],
        help="latent discriminator widths (default: %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=defaults["epochs"],
        help="training epochs (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=100, help="(default: %(default)s)")
    p.add_argument("--out", default=defaults["out"], help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, splits and prior samples")
    p.add_argument(
        "--accelerator",
        default="auto",
        help="Lightning accelerator: auto, cpu, gpu/cuda, mps (default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentnav",
        description="Train adversarial autoencoders and navigate their latent space without "
        "falling into its holes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train a small AAE on the embedded MNIST subset and write its figures",
        description="Train an AAE on the shipped MNIST subset (a few minutes on 2 CPU cores) and "
        "write the checkpoint, reconstructions, a latent plot, the D_z map, training "
        "curves and metrics.json into the output folder.",
    )
    _add_training_args(
        demo,
        {
            "latent_dim": 8,
            "prior": "normal",
            "hidden": (512, 512),
            "disc_hidden": (256, 256),
            "epochs": 15,
            "out": "latentnav-demo",
        },
    )
    train = sub.add_parser(
        "train-aae",
        help="train an adversarial autoencoder",
        description="Train an AAE (reconstruction phase, then D_z and encoder regularisation "
        "phases per minibatch) and write aae.safetensors, metrics.json and figures.",
    )
    _add_training_args(
        train,
        {
            "latent_dim": 8,
            "prior": "normal",
            "hidden": (1000, 1000),
            "disc_hidden": (1000, 1000),
            "epochs": 20,
            "out": "runs/aae",
        },
    )
    return parser


def _run_config(args: argparse.Namespace):
    from latentnav.runs import RunConfig

    prior: dict = {"name": args.prior}
    if args.prior == "mixture":
        prior["k"] = args.components
    model = AAEConfig(
        latent_dim=args.latent_dim,
        family=args.family,
        hidden=args.hidden,
        disc_hidden=args.disc_hidden,
        prior=prior,
    )
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    return RunConfig(
        data=args.data, out_dir=args.out, accelerator=args.accelerator, model=model, train=train
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from latentnav.runs import train_aae_run

    try:
        config = _run_config(args)
        _, metrics = train_aae_run(config, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"latentnav {args.command}: error: {err}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "out": args.out,
                "wall_time_s": round(metrics["wall_time_s"], 1),
                **{k: round(v, 4) for k, v in metrics["test"].items()},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
