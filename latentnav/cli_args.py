"""The ``latentnav`` command line's arguments: one parser, a subcommand per job (``demo``,
``train-aae``, ``train``, ``sample``, ``navigate``, ``train-guidance``); every --help shows the
defaults. :mod:`latentnav.cli` runs them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from latentnav.sampling import SAMPLERS
from latentnav.training.trainer import STRATEGIES

__all__ = ["build_parser", "explicit_options", "PRIORS"]


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


def _option(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as JSON when it parses (numbers, true/false), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


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
    p.add_argument(
        "--devices", type=_positive_int, default=1,
        help="processes per node, one device each (Lightning DDP when > 1; --batch-size is per "
        "device, so the global batch is batch-size x devices x num-nodes)",
    )  # fmt: skip
    p.add_argument(
        "--num-nodes", type=_positive_int, default=1,
        help="machines; each runs the same command (torchrun or SLURM sets the ranks, or set "
        "MASTER_ADDR, MASTER_PORT, NODE_RANK yourself)",
    )  # fmt: skip
    p.add_argument(
        "--strategy", choices=STRATEGIES, default="auto",
        help="auto: one device, or DDP when devices x num-nodes > 1; ddp re-runs the command per "
        "extra device; ddp_spawn / ddp_fork start the processes from this one",
    )  # fmt: skip
    p.add_argument(
        "--compass-steps", type=int, default=6000,
        help="most steps of the compass refitted on the frozen encoder at the end and stored "
        "with the AAE, so Navigator(aae) works on the checkpoint (0: none)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--resume", metavar="RUN", default=None,
        help="continue the interrupted run of folder RUN (RUN.partial) from its last completed "
        "epoch, with the options stored there (others given must agree with them)",
    )  # fmt: skip
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace the results of an earlier run in --out (and an interrupted one)",
    )  # fmt: skip


def explicit_options(argv: Sequence[str]) -> dict[str, object]:
    """The options ``argv`` gives explicitly (``{dest: value}``, defaults left out)."""
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            if action.dest != "help":
                action.default = argparse.SUPPRESS
    given = vars(parser.parse_args(argv))
    for dest in ("command", "debug"):
        given.pop(dest, None)
    return given


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr, exit status 2 (the usage is in ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(sub, name: str, **kw) -> argparse.ArgumentParser:
    """A subcommand whose --help shows every option's default."""
    return sub.add_parser(name, formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="latentnav",
        description="Train adversarial autoencoders and navigate their latent space without "
        "falling into its holes.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when a command fails"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _command(
        sub,
        "demo",
        help="the whole job on the embedded MNIST subset, with report.html",
        description="Train the AAE and the latent diffusion model on the shipped MNIST subset, "
        "refit the compass, navigate test pairs with LERP, SLERP and the default navigator, "
        "sample with and without discriminator guidance, and write report.html (figures, a "
        "side-by-side video, the path and sample tables) into the output folder. About 5 "
        "minutes on 2 CPU cores; --quick runs every stage at toy size in well under a minute.",
    )
    demo.add_argument(
        "--out", default="latentnav-demo", help="output folder (default: %(default)s)"
    )
    demo.add_argument(
        "--data", default="mnist-embedded", help="dataset spec, e.g. mnist:/path/mnist.npz"
    )
    size = demo.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="toy sizes (tests, a first look)")
    size.add_argument("--full", action="store_true", help="the measured runs' sizes (full data)")
    demo.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    demo.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto")
    demo.add_argument("--no-progress", action="store_true", help="no per-stage progress lines")
    train = _command(
        sub,
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
    joint = _command(
        sub,
        "train",
        help="train an AAE and its latent diffusion model in one run",
        description="Joint stage: every minibatch trains the AAE's three phases and one "
        "score-matching step on the current (detached) encoder latents; then the score model is "
        "fine-tuned on the frozen encoder. Writes bundle.safetensors (AAE + diffusion), "
        "metrics.json and figures, including score_training.png and samples.png.",
    )
    _add_training_args(
        joint,
        {
            "latent_dim": 8,
            "prior": "normal",
            "hidden": (1000, 1000),
            "disc_hidden": (1000, 1000),
            "epochs": 20,
            "out": "runs/latentnav",
        },
    )
    _add_diffusion_args(joint)
    smp = _command(
        sub,
        "sample",
        help="sample latents and images from a trained bundle",
        description="Draw latents from the latent diffusion model of a bundle written by "
        "'latentnav train', decode them, and write an image grid and the latents.",
    )
    smp.add_argument("bundle", help="bundle.safetensors written by 'latentnav train'")
    smp.add_argument("-n", type=_positive_int, default=64, help="samples (default: %(default)s)")
    smp.add_argument(
        "--sampler",
        choices=(*SAMPLERS, "prior"),
        default="ode",
        help="'prior' decodes z ~ p(z) instead, for comparison (default: %(default)s)",
    )
    smp.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="steps of the time grid",
    )
    smp.add_argument(
        "--option",
        action="append",
        default=[],
        type=_option,
        metavar="KEY=VALUE",
        help="a sampler option, e.g. snr=0.2 or corrector_steps=2 or rtol=1e-3 (repeatable)",
    )
    smp.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    smp.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    smp.add_argument("--out", default="samples", help="output folder (default: %(default)s)")
    gui = smp.add_argument_group(
        "discriminator guidance (DESIGN.md §5; a D_ψ from 'latentnav train-guidance')"
    )
    gui.add_argument("--guidance", metavar="D.safetensors", default=None, help="guide with D_ψ")
    gui.add_argument("--weight", type=float, default=1.0, help="λ, predictor")
    gui.add_argument("--corrector-weight", type=float, default=None, help="γ, corrector")
    gui.add_argument(
        "--schedule", choices=("constant", "decreasing", "interval"), default="constant",
        help="λ(t): constant, decreasing in t, or λ on [--t-min, --t-max]",
    )  # fmt: skip
    gui.add_argument("--t-min", type=float, default=None, help="interval start (schedule interval)")
    gui.add_argument("--t-max", type=float, default=None, help="interval end (schedule interval)")
    gui.add_argument("--clip", type=float, default=None, help="cap on ‖λ∇ℓ_ψ‖ per sample")
    gui.add_argument(
        "--boost-rounds", type=int, default=0,
        help="re-sample samples with ℓ_ψ < 0 with doubled guidance, this many rounds",
    )  # fmt: skip
    gui.add_argument("--boost-time", type=float, default=0.3, help="re-noise to this t")
    smp.add_argument(
        "--video",
        default=None,
        metavar="NAME",
        help="also write a denoising video of the first 16 samples into the output folder, "
        "e.g. denoise.mp4 or denoise.gif (a name without either suffix: a folder of PNGs)",
    )
    nav = _command(
        sub,
        "navigate",
        help="paths between test images with any navigation method",
        description="Encode pairs of test images with an AAE checkpoint (or a bundle) and "
        "navigate between them; writes paths.safetensors and strip.png, and with --video / "
        "--report a video (flagged frames in red when --report) and the PathReport table.",
    )
    nav.add_argument("checkpoint", help="aae.safetensors or bundle.safetensors")
    nav.add_argument("--data", default="mnist-embedded", help="dataset spec of the test images")
    nav.add_argument(
        "--pairs", default="random:8",
        help="'i,j k,l' test indices, 'A:B' a class pair, or 'random:N' (default: %(default)s)",
    )  # fmt: skip
    nav.add_argument(
        "--method", default=None,
        help="a name in latentnav.navigation.METHODS",
    )  # fmt: skip
    nav.add_argument(
        "--graph-data", action="store_true",
        help="--method graph over the training images of --data themselves (k-NN between "
        "images, the bank inverted where the encoder misplaces an image)",
    )  # fmt: skip
    nav.add_argument("--steps", type=_positive_int, default=32, help="T")
    nav.add_argument("--compass", default=None, help="compass.safetensors (fit_compass)")
    nav.add_argument("--video", default=None, metavar="NAME", help="e.g. paths.mp4 or paths.gif")
    nav.add_argument("--report", action="store_true", help="judge the frames (OOD detectors)")
    nav.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    nav.add_argument("--out", default="paths", help="output folder (default: %(default)s)")
    tg = _command(
        sub,
        "train-guidance",
        help="train a time-dependent discriminator D_ψ(z, t) for guided sampling",
        description="Fit D_ψ(z, t) post hoc on a bundle: encoded training images (real) "
        "against the bundle's own samples (fake, drawn once and cached), diffused to t. Writes "
        "guidance.safetensors, guidance_report.json (accuracy and calibration per time "
        "bucket) and guidance_buckets.png; use it with 'latentnav sample --guidance'.",
    )
    tg.add_argument("bundle", help="bundle.safetensors written by 'latentnav train'")
    tg.add_argument("--data", default="mnist-embedded", help="the bundle's training data spec")
    tg.add_argument("--out", default="guidance", help="output folder (default: %(default)s)")
    tg.add_argument("--samples", type=_positive_int, default=10_000, help="model samples")
    tg.add_argument("--sampler", choices=tuple(SAMPLERS), default="ode")
    tg.add_argument("--steps", type=_positive_int, default=2000, help="most Adam steps")
    tg.add_argument("--hidden", type=_widths, default=(256, 256), help="D_ψ widths, e.g. 256,256")
    tg.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    tg.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    tg.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _add_diffusion_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sde", choices=("vp", "subvp", "ve"), default="vp", help="forward SDE")
    p.add_argument("--loss", choices=("dsm", "ssm", "esm"), default="dsm", help="loss")
    p.add_argument("--score-width", type=_positive_int, default=256, help="score MLP width")
    p.add_argument("--score-blocks", type=_positive_int, default=3, help="residual blocks")
    p.add_argument(
        "--finetune-epochs",
        type=_positive_int,
        default=50,
        help="score-model epochs on the frozen encoder (default: %(default)s)",
    )
