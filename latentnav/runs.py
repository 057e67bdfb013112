"""One training run, end to end: data → training → checkpoint → figures → metrics.

Used by ``latentnav train-aae`` (:func:`train_aae_run`, the AAE) and ``latentnav train`` /
``latentnav demo`` (:func:`train_joint_run`, AAE and latent diffusion). Folder layout
(:mod:`latentnav.run_folder`): a run writes into the staging folder ``RUN.partial`` and moves its
results into ``RUN`` when it completes, so ``RUN`` is complete or absent and ``RUN.partial`` marks
an interrupted run. Results: ``aae.safetensors`` (or ``bundle.safetensors``), ``metrics.json``,
``run_config.json``, the figures (:mod:`latentnav.run_figures`; one that fails to draw is skipped
with a warning and listed in ``metrics.json``) and Lightning's ``metrics.csv``.

Faults: training writes ``last.ckpt`` at every epoch boundary (:class:`LastCheckpoint`); a
SIGTERM or SIGINT ends the run with :class:`RunStopped` (exit status 143 / 130 on the command
line) and :func:`resume_run` continues it exactly from the last completed epoch, in either stage
of a joint run (its first stage's result is saved as ``stage1.safetensors`` before the
fine-tune starts, the stage in ``stage.json``). A non-finite loss stops training with
:class:`~latentnav.training.callbacks.NonFiniteLossError`; a pinned D_z accuracy is warned about.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from latentnav._signals import StopRequested, graceful_stop
from latentnav.aae import AAE, AAEConfig
from latentnav.checkpoint import atomic_path
from latentnav.compass import CompassConfig, fit_compass
from latentnav.data import ImageData, ImageDataModule
from latentnav.density_ratio import RatioFitConfig
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.metrics.mmd import mmd2
from latentnav.navigation.clusters import attach_cluster_classifier
from latentnav.navigation.graph import attach_data_graph, data_bank
from latentnav.run_figures import (
    aae_figures,
    draw_figures,
    samples_figure,
    score_training_figure,
    training_figure,
)
from latentnav.run_folder import (
    RunFolder,
    RunPosition,
    RunStopped,
    begin_run,
    quiet_resume,
    stopped,
)
from latentnav.training import TrainConfig, fit_aae, make_trainer, reconstruction_loss
from latentnav.training.callbacks import GanBalance, NonFiniteLoss
from latentnav.training.resume import LAST_CHECKPOINT, LastCheckpoint
from latentnav.viz import save_figure

__all__ = [
    "RunConfig",
    "JointRunConfig",
    "RunStopped",
    "train_aae_run",
    "train_joint_run",
    "resume_run",
    "run_config_from_dict",
    "evaluate_aae",
    "aae_figures",
]


@dataclass
class RunConfig:
    """A training run; ``compass``: the compass refitted on the frozen encoder at the end and
    stored with the AAE (DESIGN.md §3), so ``Navigator(aae)`` works on the loaded checkpoint
    (None: no compass). ``devices``, ``num_nodes``, ``strategy``: Lightning's data parallelism
    (:func:`~latentnav.training.make_trainer`; the batch size is per device); only the process of
    global rank 0 writes the run folder, the others train and return."""

    data: str = "mnist-embedded"
    out_dir: str = "latentnav-run"
    accelerator: str = "auto"
    model: AAEConfig = field(default_factory=AAEConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compass: CompassConfig | None = field(default_factory=CompassConfig)
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        from latentnav._validate import check_choice, check_int
        from latentnav.training.trainer import STRATEGIES

        check_int(self.devices, "devices", 1)
        check_int(self.num_nodes, "num_nodes", 1)
        check_choice(self.strategy, "strategy", STRATEGIES)

    @property
    def parallel(self) -> dict[str, Any]:
        return {"devices": self.devices, "num_nodes": self.num_nodes, "strategy": self.strategy}


def attach_compass(aae: AAE, datamodule, config: CompassConfig | None) -> dict[str, Any]:
    """Refit the compass on the trained, frozen encoder (train images, validated on the
    validation split) and attach it as ``aae.compass``; returns its held-out report. Also
    attaches the encoded training images as ``aae.latent_bank`` (the "graph" navigator's nodes,
    :func:`~latentnav.navigation.graph.data_bank`) and their own k-NN graph (the default
    navigator's data graph, :func:`~latentnav.navigation.graph.attach_data_graph`) and, on a graph
    of at least 100 nodes, the label-free classes of its spectral clusters (the default energy's
    class term, :func:`~latentnav.navigation.clusters.attach_cluster_classifier`)."""
    aae.latent_bank = data_bank(aae, datamodule.train_data.images)
    attach_data_graph(aae, datamodule.train_data.images)
    found = {}
    if len(aae.data_latents) >= 100:
        sizes = attach_cluster_classifier(aae)["cluster_sizes"]
        found = {"cluster_sizes": sizes}
    if config is None:
        return found
    compass, report = fit_compass(
        aae, datamodule.train_data.images, datamodule.val_data.images, config
    )
    aae.compass = compass
    keep = ("heldout_accuracy", "validation_accuracy", "temperature")
    return {**{k: report[k] for k in keep if k in report}, **found}


def build_aae(config: AAEConfig, seed: int) -> AAE:
    """An AAE whose initial weights depend on ``seed`` only (global RNG state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AAE(config)


@torch.no_grad()
def evaluate_aae(aae: AAE, data: ImageData, seed: int = 0, batch_size: int = 1000) -> dict:
    """Held-out figures: reconstruction error, D_z accuracy (prior vs encoded), MMD²(q, p)."""
    aae.eval()
    device = aae.device
    z, bce, mse = [], 0.0, 0.0
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size].to(device)
        zi = aae.encode(x)
        x_hat = aae.decoder(zi)
        bce += float(reconstruction_loss(x_hat, x, "bce")) * len(x)
        mse += float((x_hat - x).square().mean(dim=tuple(range(1, x.ndim))).sum())
        z.append(zi)
    z_fake = torch.cat(z)
    g = torch.Generator(device).manual_seed(seed)
    z_real = aae.prior.sample(len(z_fake), generator=g)
    acc_real = float((aae.log_ratio(z_real) > 0).float().mean())
    acc_fake = float((aae.log_ratio(z_fake) < 0).float().mean())
    n = min(2000, len(z_fake))
    return {
        "n_images": len(data),
        "recon_bce_per_image": bce / len(data),
        "recon_mse_per_pixel": mse / len(data),
        "d_acc_prior": acc_real,
        "d_acc_encoded": acc_fake,
        "d_acc": 0.5 * (acc_real + acc_fake),
        "mmd2": float(mmd2(z_fake[:n], z_real[:n])),
    }


def _setup(config: RunConfig) -> tuple[ImageDataModule, AAEConfig]:
    """Data module and the model config with the data's image shape (creates no folder)."""
    datamodule = ImageDataModule.from_spec(
        config.data, batch_size=config.train.batch_size, seed=config.train.seed
    )
    datamodule.setup()
    model_config = config.model
    if model_config.image_shape != datamodule.image_shape:
        model_config = AAEConfig(**{**asdict(model_config), "image_shape": datamodule.image_shape})
    return datamodule, model_config


def _run_metrics(config, aae, datamodule, model_config, wall: float) -> dict[str, Any]:
    """metrics.json of a run: wall time, device, held-out figures, the configs."""
    return {
        "wall_time_s": wall,
        "device": str(aae.device),
        "test": evaluate_aae(aae, datamodule.test_data, seed=config.train.seed),
        "config": {
            "data": config.data,
            "model": asdict(model_config),
            "train": asdict(config.train),
        },
    }


def run_config_from_dict(kind: str, data: dict[str, Any]) -> RunConfig:
    """The :class:`RunConfig` (``kind`` "aae") or :class:`JointRunConfig` ("joint") whose
    ``asdict`` is ``data`` (as stored in ``run_config.json``)."""
    if kind not in ("aae", "joint"):
        raise ValueError(f"run kind must be 'aae' or 'joint', got {kind!r}")
    data = dict(data)
    compass = data.get("compass")
    if compass is not None:
        compass = CompassConfig(**{**compass, "hidden": tuple(compass["hidden"]),
                                   "fit": RatioFitConfig(**compass["fit"])})  # fmt: skip
    common = {
        "data": data["data"], "out_dir": data["out_dir"], "accelerator": data["accelerator"],
        "model": AAEConfig(**data["model"]), "train": TrainConfig(**data["train"]),
        "compass": compass,
        **{k: data[k] for k in ("devices", "num_nodes", "strategy") if k in data},
    }  # fmt: skip
    if kind == "aae":
        return RunConfig(**common)
    diffusion = data.get("diffusion")
    return JointRunConfig(**common, diffusion=diffusion and DiffusionConfig(**diffusion))


def _plain(config: RunConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() else None


def _guards() -> list:
    return [NonFiniteLoss(), GanBalance()]


def train_aae_run(
    config: RunConfig,
    progress: bool = True,
    *,
    resume: bool = False,
    overwrite: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[AAE, dict[str, Any]]:
    """Train an AAE on ``config.data`` and write every artefact into ``config.out_dir``
    (staged in ``out_dir.partial``). ``resume``: continue the interrupted run there (use
    :func:`resume_run`); ``overwrite``: replace an earlier run's results; ``options``: the command
    line's options, stored in ``run_config.json``. Raises :class:`RunStopped` on SIGTERM/SIGINT."""
    folder, position = RunFolder(config.out_dir), RunPosition()
    with graceful_stop():
        try:
            return _train_aae(config, progress, resume, overwrite, options, folder, position)
        except StopRequested as err:
            raise stopped(err, folder, position) from None


def _rank_zero() -> bool:
    """Is this the process of global rank 0 (the only one that writes the run folder)?"""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _train_aae(config, progress, resume, overwrite, options, folder, position):
    writer = _rank_zero()
    if writer:
        begin_run(folder, "aae", _plain(config), resume, overwrite)
    datamodule, model_config = _setup(config)
    record = {"kind": "aae", "config": _plain(config), "options": options}
    work = folder.staging if resume or not writer else folder.create(record)
    aae = build_aae(model_config, config.train.seed)
    start = time.perf_counter()
    last = LastCheckpoint(work)
    position.enter("", last)
    with quiet_resume():
        fit_aae(
            aae, datamodule, config.train, config.accelerator, log_dir=str(work),
            progress=progress, callbacks=[last, *_guards()],
            ckpt_path=_existing(work / LAST_CHECKPOINT), **config.parallel,
        )  # fmt: skip
    if not _rank_zero():
        return aae, {}
    position.enter("after training (compass, checkpoint, figures)")
    compass_report = attach_compass(aae, datamodule, config.compass)
    wall = time.perf_counter() - start
    aae.save(work / "aae.safetensors")
    metrics = _run_metrics(config, aae, datamodule, model_config, wall)
    metrics["compass"] = compass_report
    failed = draw_figures(
        {
            "reconstructions.png, latents.png, discriminator.png": lambda: aae_figures(
                aae, datamodule.test_data, work
            ),
            "training.png": lambda: _save(training_figure(work / "metrics.csv"), work, "training"),
        }
    )
    _finish(folder, work, metrics, failed)
    return aae, metrics


def _save(fig, work: Path, name: str) -> None:
    if fig is not None:
        save_figure(fig, work / f"{name}.png")


def _finish(folder: RunFolder, work: Path, metrics: dict[str, Any], failed: dict) -> None:
    if failed:
        metrics["figures_not_drawn"] = failed
    with atomic_path(work / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    folder.finish()


@dataclass
class JointRunConfig(RunConfig):
    """An AAE run plus its latent diffusion (joint stage, then ``diffusion.epochs`` fine-tune)."""

    diffusion: DiffusionConfig | None = None


def train_joint_run(
    config: JointRunConfig,
    progress: bool = True,
    *,
    resume: bool = False,
    overwrite: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train AAE + latent diffusion (:mod:`latentnav.joint`) and write ``bundle.safetensors``,
    ``metrics.json``, the AAE figures, ``score_training.png`` and ``samples.png``; the arguments
    as in :func:`train_aae_run`."""
    folder, position = RunFolder(config.out_dir), RunPosition()
    with graceful_stop():
        try:
            return _train_joint(config, progress, resume, overwrite, options, folder, position)
        except StopRequested as err:
            raise stopped(err, folder, position) from None


def _joint_stage(config, model_config, datamodule, work, progress, position):
    """Stage 1 (or its resumption from ``last.ckpt``): AAE and score model trained together."""
    from latentnav.joint import JointTraining, default_diffusion_config

    aae = build_aae(model_config, config.train.seed)
    diffusion_config = config.diffusion or default_diffusion_config(model_config.latent_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed + 7)
        diffusion = LatentDiffusion(diffusion_config)
    last = LastCheckpoint(work)
    position.enter(" of the joint stage", last)
    trainer = make_trainer(
        config.train.epochs, config.accelerator, str(work), progress, **config.parallel,
        callbacks=[last, *_guards()],
    )  # fmt: skip
    with quiet_resume():
        trainer.fit(
            JointTraining(aae, diffusion, config.train), datamodule=datamodule,
            ckpt_path=_existing(work / LAST_CHECKPOINT), weights_only=True,
        )  # fmt: skip
    return aae, diffusion


def _train_joint(config, progress, resume, overwrite, options, folder, position):
    from latentnav.joint import encode_dataset, load_bundle, save_bundle
    from latentnav.training import fit_diffusion

    writer = _rank_zero()
    if writer:
        begin_run(folder, "joint", _plain(config), resume, overwrite)
    datamodule, model_config = _setup(config)
    record = {"kind": "joint", "config": _plain(config), "options": options}
    work = folder.staging if resume or not writer else folder.create(record)
    stage = folder.stage()
    start = time.perf_counter()
    if stage.get("stage") == "finetune":  # stage 1 done before the interruption
        aae, diffusion = load_bundle(work / "stage1.safetensors")
        diffusion.train()  # as the joint stage leaves it
        joint_wall = stage["joint_wall_time_s"]
    else:
        aae, diffusion = _joint_stage(config, model_config, datamodule, work, progress, position)
        if not _rank_zero():  # the fine-tune (one device) and the outputs are rank 0's
            return (aae, diffusion), {}
        joint_wall = time.perf_counter() - start
        save_bundle(work / "stage1.safetensors", aae, diffusion)
        folder.set_stage({"stage": "finetune", "joint_wall_time_s": joint_wall})
    aae.eval()
    latents = encode_dataset(aae, datamodule.train_data.images)
    val_latents = encode_dataset(aae, datamodule.val_data.images)
    last = LastCheckpoint(work / "finetune")
    position.enter(" of the fine-tune stage", last)
    with quiet_resume():
        fit_diffusion(
            diffusion, latents, val_latents, config.accelerator, log_dir=str(work / "finetune"),
            progress=progress, callbacks=[last, *_guards()],
            ckpt_path=_existing(work / "finetune" / LAST_CHECKPOINT),
        )  # fmt: skip
    position.enter("after training (compass, bundle, figures)")
    compass_report = attach_compass(aae, datamodule, config.compass)
    wall = time.perf_counter() - start
    save_bundle(work / "bundle.safetensors", aae, diffusion)
    metrics = _run_metrics(config, aae, datamodule, model_config, wall)
    metrics["compass"] = compass_report
    metrics["joint_wall_time_s"] = joint_wall
    metrics["config"]["diffusion"] = asdict(diffusion.config)
    seed = config.train.seed
    failed = draw_figures(
        {
            "reconstructions.png, latents.png, discriminator.png": lambda: aae_figures(
                aae, datamodule.test_data, work
            ),
            "training.png": lambda: _save(training_figure(work / "metrics.csv"), work, "training"),
            "score_training.png": lambda: _save(
                score_training_figure(work / "metrics.csv", work / "finetune" / "metrics.csv"),
                work,
                "score_training",
            ),  # fmt: skip
            "samples.png": lambda: _save(samples_figure(aae, diffusion, seed), work, "samples"),
        }
    )
    _finish(folder, work, metrics, failed)
    return (aae, diffusion), metrics


def resume_run(out: str | Path, progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """Continue the interrupted run of folder ``out`` (``out.partial``) with its stored config,
    from its last completed epoch; returns what :func:`train_aae_run` or
    :func:`train_joint_run` returns."""
    folder = RunFolder(out)
    record = folder.record()
    config = replace(
        run_config_from_dict(record.get("kind"), record["config"]), out_dir=str(folder.out)
    )
    run = train_joint_run if record["kind"] == "joint" else train_aae_run
    return run(config, progress, resume=True, options=record.get("options"))
