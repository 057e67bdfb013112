"""What every benchmark script shares: the data path, MNIST loading, the evaluation pair sets, the
judge (reference classifier + OOD detectors, DESIGN.md §7), thread setting, JSON output, the common
command-line options and the tiny in-memory models of ``--smoke`` runs.

Data path: ``--data`` (alias ``--mnist``), else ``$LATENTNAV_MNIST``, else
``../shared/data/mnist.npz`` beside the repository root (for a git worktree, also beside the main
checkout). ``--smoke`` runs load the embedded MNIST subset unless ``--data`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from latentnav.aae import AAE, AAEConfig
from latentnav.checkpoint import atomic_path
from latentnav.compass import CompassConfig, fit_compass
from latentnav.data import ImageData, ImageDataModule, load_embedded_mnist, load_mnist
from latentnav.density_ratio import RatioFitConfig
from latentnav.diffusion import LatentDiffusion
from latentnav.joint import default_diffusion_config
from latentnav.metrics import (
    OODConfig,
    OODDetector,
    ReferenceClassifier,
    ReferenceConfig,
    ood_detector,
    reference_classifier,
)
from latentnav.networks import LatentDiscriminator
from latentnav.runs import build_aae, evaluate_aae
from latentnav.score_net import ScoreNetConfig
from latentnav.training import TrainConfig, fit_aae

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"  # where the RESULTS commands put trained models
DATA_ENV = "LATENTNAV_MNIST"
DATA_RELATIVE = Path("..") / "shared" / "data" / "mnist.npz"  # relative to the repository root

# Sizes of --smoke runs: embedded-subset images, pairs and path steps.
SMOKE_TRAIN, SMOKE_TEST, SMOKE_PAIRS, SMOKE_STEPS = 1000, 300, 6, 6
SMOKE_REFERENCE = ReferenceConfig(channels=(4, 8), hidden=16, epochs=1, batch_size=128)
SMOKE_OOD = OODConfig(bank_size=500)


def _main_checkout(repo: Path) -> Path | None:
    """The main checkout of a git worktree (``.git`` is then a file ``gitdir: MAIN/.git/...``)."""
    dot_git = repo / ".git"
    if not dot_git.is_file():
        return None
    line = dot_git.read_text().strip()
    if not line.startswith("gitdir:"):
        return None
    git_dir = Path(line.removeprefix("gitdir:").strip())
    git_dir = git_dir if git_dir.is_absolute() else (repo / git_dir).resolve()
    return git_dir.parents[2] if git_dir.parent.name == "worktrees" else None


def default_data_path() -> Path:
    """``$LATENTNAV_MNIST``, else the first existing of ``ROOT/../shared/data/mnist.npz`` (ROOT:
    the repository, or for a git worktree its main checkout) and ``ROOT/shared/data/mnist.npz``
    (a checkout that carries ``shared/``); none existing: the first."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    inside = Path(*DATA_RELATIVE.parts[1:])
    roots = [REPO, *([main] if (main := _main_checkout(REPO)) else [])]
    candidates = [(root / DATA_RELATIVE).resolve() for root in roots] + [REPO / inside]
    return next((c for c in candidates if c.is_file()), candidates[0])


MNIST = default_data_path()


def data_path(option: str | None) -> Path:
    """The ``--data`` option if given, else :func:`default_data_path`."""
    return Path(option).expanduser() if option else default_data_path()


def load_splits(args: argparse.Namespace) -> tuple[ImageData, ImageData]:
    """(train, test) MNIST ``(N, 1, 28, 28)``: full MNIST from the data path, or in ``--smoke``
    the first ``SMOKE_TRAIN`` / ``SMOKE_TEST`` images of the embedded subset (or of ``--data``)."""
    if not args.smoke:
        path = data_path(args.data)
        return load_mnist(path, "train"), load_mnist(path, "test")
    source = Path(args.data).expanduser() if args.data else None
    train, test = load_mnist(source, "train"), load_mnist(source, "test")
    return train.subset(slice(0, SMOKE_TRAIN)), test.subset(slice(0, SMOKE_TEST))


def smoke_mnist(folder: str | os.PathLike) -> Path:
    """Write the smoke-sized embedded subset (first ``SMOKE_TRAIN`` / ``SMOKE_TEST`` images) as
    ``folder/mnist_smoke.npz`` for code paths that take an MNIST file or ``mnist:PATH`` spec."""
    train, test = load_mnist(None, "train"), load_mnist(None, "test")
    arrays = {}
    for split, data, n in (("train", train, SMOKE_TRAIN), ("test", test, SMOKE_TEST)):
        arrays[f"x_{split}"] = (data.images[:n, 0] * 255).round().to(torch.uint8).numpy()
        arrays[f"y_{split}"] = data.labels[:n].to(torch.uint8).numpy()
    path = Path(folder) / "mnist_smoke.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def different_class_pairs(labels: torch.Tensor, n: int, seed: int) -> tuple:
    """Index pairs ``(n,), (n,)`` of images of different classes: two seeded permutations of the
    set, pairs with equal labels dropped (the pairs of RESULTS §5 and §6.3 with seed 0)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randperm(len(labels), generator=g)
    b = torch.randperm(len(labels), generator=g)
    keep = labels[a] != labels[b]
    return a[keep][:n], b[keep][:n]


def pair_set(labels: torch.Tensor, which: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation pairs ("final": the 1 000 seed-0 pairs of RESULTS 6.3, first ``n``) or dev pairs
    ("dev": seed 1, minus every evaluation pair)."""
    ea, eb = different_class_pairs(labels, 1000, 0)
    if which == "final":
        return ea[:n], eb[:n]
    used = {(int(a), int(b)) for a, b in zip(ea, eb, strict=True)}
    da, db = different_class_pairs(labels, 2 * n + 1000, 1)
    keep = torch.tensor([(int(a), int(b)) not in used for a, b in zip(da, db, strict=True)])
    return da[keep][:n], db[keep][:n]


class Judge(NamedTuple):
    """The reference classifier and its OOD detector (banks from train, thresholds from test)."""

    classifier: ReferenceClassifier
    detector: OODDetector


def reference(train: ImageData, smoke: bool = False) -> ReferenceClassifier:
    """The reference classifier of RESULTS §5 (default config, cached under
    ``$LATENTNAV_CACHE``); ``smoke``: a narrow one-epoch CNN."""
    if smoke:
        return reference_classifier(train.images, train.labels, SMOKE_REFERENCE, progress=False)
    return reference_classifier(train.images, train.labels)


def judge(train: ImageData, test: ImageData, smoke: bool = False) -> Judge:
    """:func:`reference` and its OOD detector (banks from ``train``, thresholds from ``test``);
    ``smoke``: small banks."""
    ref = reference(train, smoke)
    return Judge(ref, ood_detector(ref, train.images, test.images, SMOKE_OOD if smoke else None))


def set_threads(threads: int) -> None:
    """torch CPU threads (0: leave torch's default)."""
    if threads:
        torch.set_num_threads(threads)


def json_path(out: str | os.PathLike, name: str) -> Path:
    """``out`` itself when it names a ``.json`` file, else ``out/name``."""
    out = Path(out)
    return out if out.suffix == ".json" else out / name


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (non-JSON numbers such as tensors via float)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=float))
    return Path(path)


def base_parser(
    doc: str | None,
    *,
    out: str | None = None,
    out_required: bool = False,
    threads: int = 0,
    seed: int | None = 0,
    data: bool = True,
) -> argparse.ArgumentParser:
    """The common options: ``--out`` (``out``: its default; ``out_required``: required unless
    ``--smoke``), ``--threads``, ``--seed`` (``seed``: its default; None: a script without one),
    ``--smoke`` and (``data``) ``--data``/``--mnist``."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    need = " (required unless --smoke)" if out_required else ""
    p.add_argument("--out", default=out, help=f"output folder{need}; --smoke: a temp folder")
    p.add_argument("--threads", type=int, default=threads, help="torch CPU threads (0: torch's)")
    if seed is not None:
        p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--smoke", action="store_true", help="the whole code path in seconds, tiny")
    if data:
        p.add_argument(
            "--data",
            "--mnist",
            dest="data",
            default=None,
            help=f"MNIST .npz or IDX folder (default: ${DATA_ENV}, else {DATA_RELATIVE} beside "
            "the repository)",
        )
    p.set_defaults(_out_required=out_required)
    return p


def parse_args(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, apply ``--threads``, and give ``--smoke`` runs without ``--out`` a temp folder (so a
    smoke never writes over a full run's default output)."""
    args = p.parse_args(argv)
    if args.smoke and args.out == p.get_default("out"):
        args.out = tempfile.mkdtemp(prefix="latentnav-smoke-")
    elif args.out is None and args._out_required:
        p.error("--out is required (unless --smoke)")
    set_threads(args.threads)
    return args


# Tiny models of --smoke runs, built in memory (no trained checkpoint needed).


def tiny_aae(latent_dim: int = 4, seed: int = 0, **config: Any) -> AAE:
    """An untrained narrow MLP AAE for MNIST-shaped images."""
    config = {"hidden": (32,), "disc_hidden": (16,)} | config
    return build_aae(AAEConfig(latent_dim=latent_dim, **config), seed).eval()


def tiny_diffusion(latent_dim: int, seed: int = 0) -> LatentDiffusion:
    """An untrained narrow score model (one epoch if trained) of ``latent_dim``."""
    net = ScoreNetConfig(latent_dim=latent_dim, width=32, blocks=1, embed_dim=16)
    config = default_diffusion_config(latent_dim, net=net, epochs=1, batch_size=128, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LatentDiffusion(config).eval()


SMOKE_FIT = RatioFitConfig(max_steps=20, batch_size=256, eval_every=10, patience=2)
SMOKE_COMPASS = CompassConfig(hidden=(16,), fit=SMOKE_FIT)


def tiny_compass(aae: AAE, images: torch.Tensor) -> tuple[LatentDiscriminator, dict]:
    """A narrow compass fitted for a few steps on ``images: (N, C, H, W)`` (last 10 % held out)."""
    split = len(images) - len(images) // 10
    return fit_compass(aae, images[:split], images[split:], SMOKE_COMPASS)


def decode(aae: AAE, z: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """G(z) for ``z: (N, d)`` in chunks of ``batch``, without gradients: (N, C, H, W)."""
    with torch.no_grad():
        return torch.cat([aae.decode(part) for part in z.split(batch)])


def load_aae(args: argparse.Namespace) -> AAE:
    """``AAE.load(args.aae)``, or in ``--smoke`` an untrained :func:`tiny_aae`."""
    return tiny_aae(seed=args.seed) if args.smoke else AAE.load(args.aae).eval()


def fit_embedded_aae(
    config: AAEConfig, train: TrainConfig, smoke: bool = False, seed: int = 0
) -> tuple[AAE, ImageDataModule, dict[str, float], float]:
    """An AAE trained on the embedded MNIST subset (batch 100, split seed 0) and its test-split
    figures: (aae, datamodule, evaluate_aae report, training seconds). ``smoke``: the first
    ``SMOKE_TRAIN`` / ``SMOKE_TEST`` images and narrow MLPs."""
    train_set, test_set = load_embedded_mnist("train"), load_embedded_mnist("test")
    if smoke:
        train_set = train_set.subset(slice(0, SMOKE_TRAIN))
        test_set = test_set.subset(slice(0, SMOKE_TEST))
        config = replace(config, hidden=(32,), disc_hidden=(16,))
    dm = ImageDataModule(train_set, test_set, batch_size=100, seed=0)
    dm.setup()
    aae = build_aae(config, seed)
    start = time.perf_counter()
    fit_aae(aae, dm, train, "cpu", None, progress=False)
    seconds = time.perf_counter() - start
    return aae, dm, evaluate_aae(aae, dm.test_data), seconds
