"""One training run of the AAE, end to end: data → training → checkpoint → figures → metrics.

Used by ``latentnav train-aae`` and ``latentnav demo``; every artefact is written atomically into
``out_dir``: ``aae.safetensors``, ``metrics.json``, ``reconstructions.png``, ``latents.png``,
``discriminator.png``, ``training.png`` and Lightning's ``metrics.csv``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from latentnav.aae import AAE, AAEConfig
from latentnav.checkpoint import atomic_path
from latentnav.compass import CompassConfig, fit_compass
from latentnav.data import ImageData, ImageDataModule
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.metrics.mmd import mmd2
from latentnav.training import TrainConfig, fit_aae, make_trainer, reconstruction_loss
from latentnav.viz import discriminator_map, image_grid, image_grids, latent_scatter, save_figure

__all__ = [
    "RunConfig",
    "JointRunConfig",
    "train_aae_run",
    "train_joint_run",
    "evaluate_aae",
    "aae_figures",
]


@dataclass
class RunConfig:
    """A training run; ``compass``: the compass refitted on the frozen encoder at the end and
    stored with the AAE (DESIGN.md §3), so ``Navigator(aae)`` works on the loaded checkpoint
    (None: no compass)."""

    data: str = "mnist-embedded"
    out_dir: str = "latentnav-run"
    accelerator: str = "auto"
    model: AAEConfig = field(default_factory=AAEConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compass: CompassConfig | None = field(default_factory=CompassConfig)


def attach_compass(aae: AAE, datamodule, config: CompassConfig | None) -> dict[str, Any]:
    """Refit the compass on the trained, frozen encoder (train images, validated on the
    validation split) and attach it as ``aae.compass``; returns its held-out report."""
    if config is None:
        return {}
    compass, report = fit_compass(
        aae, datamodule.train_data.images, datamodule.val_data.images, config
    )
    aae.compass = compass
    keep = ("heldout_accuracy", "validation_accuracy", "temperature")
    return {k: report[k] for k in keep if k in report}


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


def _pca_plane(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and the top-two principal directions (2, d) of ``z: (N, d)``."""
    mean = z.mean(0)
    _, _, v = torch.linalg.svd(z - mean, full_matrices=False)
    return mean, v[:2]


@torch.no_grad()
def aae_figures(aae: AAE, data: ImageData, out_dir: Path, n_points: int = 2000) -> list[Path]:
    """Reconstructions, latent scatter over the prior, and the D_z map (PCA plane when d > 2)."""
    aae.eval()
    device = aae.device
    x = data.images[:n_points].to(device)
    z = aae.encode(x)
    labels = data.labels[:n_points]
    pairs = torch.stack([x[:32], aae.decoder(z[:32])], 1).flatten(0, 1)
    paths = [
        save_figure(
            image_grid(pairs.cpu(), nrow=16, title="test images | reconstructions"),
            out_dir / "reconstructions.png",
        )
    ]
    prior = aae.prior if aae.latent_dim == 2 else None
    paths.append(
        save_figure(
            latent_scatter(
                z.cpu(), labels, prior=prior and prior.cpu(), title="encoded test images"
            ),
            out_dir / "latents.png",
        )
    )
    if aae.latent_dim == 2:
        plane, fn, title = z, aae.discriminate, "D_z(z) over the latent plane"
    else:
        mean, basis = _pca_plane(z)
        plane = (z - mean) @ basis.T

        def fn(ab: torch.Tensor) -> torch.Tensor:
            return aae.discriminate(mean + ab.to(device) @ basis)

        title = "D_z on the plane of the first two principal components"
    lo, hi = plane.min(0).values.cpu(), plane.max(0).values.cpu()
    pad = 0.15 * (hi - lo)
    extent = (
        float(lo[0] - pad[0]),
        float(hi[0] + pad[0]),
        float(lo[1] - pad[1]),
        float(hi[1] + pad[1]),
    )
    fig = discriminator_map(lambda ab: fn(ab).cpu(), extent, points=plane[:500].cpu(), title=title)
    paths.append(save_figure(fig, out_dir / "discriminator.png"))
    return paths


def training_figure(metrics_csv: Path) -> Figure | None:
    """Validation reconstruction, D_z accuracy and MMD² per epoch, from Lightning's CSV log."""
    if not metrics_csv.is_file():
        return None
    with metrics_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/recon")]
    if not rows:
        return None
    fig = Figure(figsize=(12, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    keys = [
        ("val/recon", "reconstruction (BCE / image)"),
        ("val/d_acc", "D_z accuracy"),
        ("val/mmd2", "MMD²(q, p)"),
    ]
    epochs = [int(r["epoch"]) for r in rows]
    for ax, (key, label) in zip(axes, keys, strict=True):
        ax.plot(epochs, [float(r[key]) if r.get(key) else float("nan") for r in rows], marker="o")
        ax.set_xlabel("epoch")
        ax.set_title(label)
    axes[1].axhline(0.5, color="gray", ls="--", lw=1)
    return fig


def _setup(config: RunConfig) -> tuple[Path, ImageDataModule, AAEConfig]:
    """Output folder, data module, and the model config with the data's image shape."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    datamodule = ImageDataModule.from_spec(
        config.data, batch_size=config.train.batch_size, seed=config.train.seed
    )
    datamodule.setup()
    model_config = config.model
    if model_config.image_shape != datamodule.image_shape:
        model_config = AAEConfig(**{**asdict(model_config), "image_shape": datamodule.image_shape})
    return out, datamodule, model_config


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


def train_aae_run(config: RunConfig, progress: bool = True) -> tuple[AAE, dict[str, Any]]:
    """Train an AAE on ``config.data`` and write every artefact into ``config.out_dir``."""
    out, datamodule, model_config = _setup(config)
    seed = config.train.seed
    aae = build_aae(model_config, seed)
    start = time.perf_counter()
    fit_aae(aae, datamodule, config.train, config.accelerator, log_dir=str(out), progress=progress)
    compass_report = attach_compass(aae, datamodule, config.compass)
    wall = time.perf_counter() - start
    aae.save(out / "aae.safetensors")
    metrics = _run_metrics(config, aae, datamodule, model_config, wall)
    metrics["compass"] = compass_report
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    aae_figures(aae, datamodule.test_data, out)
    fig = training_figure(out / "metrics.csv")
    if fig is not None:
        save_figure(fig, out / "training.png")
    return aae, metrics


@dataclass
class JointRunConfig(RunConfig):
    """An AAE run plus its latent diffusion (joint stage, then ``diffusion.epochs`` fine-tune)."""

    diffusion: DiffusionConfig | None = None


def score_training_figure(joint_csv: Path, finetune_csv: Path) -> Figure | None:
    """Held-out score loss through both stages, beside the encoder's drift per joint epoch."""
    rows = []
    for path in (joint_csv, finetune_csv):
        if path.is_file():
            with path.open() as f:
                rows.append([r for r in csv.DictReader(f) if r.get("val/score_loss")])
        else:
            rows.append([])
    if not rows[0] and not rows[1]:
        return None
    joint_epochs = [int(r["epoch"]) + 1 for r in rows[0]]
    offset = max(joint_epochs, default=0)
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax, ax_drift = fig.subplots(1, 2)
    ax.plot(joint_epochs, [float(r["val/score_loss"]) for r in rows[0]], "o-", label="joint")
    ax.plot(
        [offset + int(r["epoch"]) + 1 for r in rows[1]],
        [float(r["val/score_loss"]) for r in rows[1]],
        "o-",
        label="fine-tune (encoder frozen)",
    )
    ax.set_xlabel("epoch")
    ax.set_title("held-out score loss (fixed noise)")
    ax.legend()
    drift = [
        (int(r["epoch"]) + 1, float(r["val/encoder_drift"]))
        for r in rows[0]
        if r.get("val/encoder_drift")
    ]
    if drift:
        ax_drift.plot(*zip(*drift, strict=True), "o-", color="C2")
    ax_drift.set_xlabel("epoch")
    ax_drift.set_title("encoder drift ‖E_k(x) − E_{k−1}(x)‖ / ‖E_k(x)‖")
    return fig


def train_joint_run(config: JointRunConfig, progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """Train AAE + latent diffusion (:mod:`latentnav.joint`) and write ``bundle.safetensors``,
    ``metrics.json``, the AAE figures, ``score_training.png`` and ``samples.png``."""
    from latentnav.joint import JointTraining, default_diffusion_config, encode_dataset, save_bundle
    from latentnav.training import fit_diffusion

    out, datamodule, model_config = _setup(config)
    seed = config.train.seed
    aae = build_aae(model_config, seed)
    diffusion_config = config.diffusion or default_diffusion_config(model_config.latent_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7)
        diffusion = LatentDiffusion(diffusion_config)
    start = time.perf_counter()
    trainer = make_trainer(config.train.epochs, config.accelerator, str(out), progress)
    trainer.fit(JointTraining(aae, diffusion, config.train), datamodule=datamodule)
    joint_wall = time.perf_counter() - start
    aae.eval()
    latents = encode_dataset(aae, datamodule.train_data.images)
    val_latents = encode_dataset(aae, datamodule.val_data.images)
    fit_diffusion(
        diffusion,
        latents,
        val_latents,
        config.accelerator,
        log_dir=str(out / "finetune"),
        progress=progress,
    )
    compass_report = attach_compass(aae, datamodule, config.compass)
    wall = time.perf_counter() - start
    save_bundle(out / "bundle.safetensors", aae, diffusion)
    metrics = _run_metrics(config, aae, datamodule, model_config, wall)
    metrics["compass"] = compass_report
    metrics["joint_wall_time_s"] = joint_wall
    metrics["config"]["diffusion"] = asdict(diffusion_config)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    aae_figures(aae, datamodule.test_data, out)
    score_fig = score_training_figure(out / "metrics.csv", out / "finetune" / "metrics.csv")
    for fig, name in [
        (training_figure(out / "metrics.csv"), "training.png"),
        (score_fig, "score_training.png"),
        (samples_figure(aae, diffusion, seed), "samples.png"),
    ]:
        if fig is not None:
            save_figure(fig, out / name)
    return (aae, diffusion), metrics


@torch.no_grad()
def samples_figure(aae: AAE, diffusion: LatentDiffusion, seed: int, n: int = 64) -> Figure:
    """Decoded prior samples G(z), z ~ p(z), beside decoded latent-diffusion samples."""
    g = torch.Generator(aae.device).manual_seed(seed)
    prior = aae.decode(aae.prior.sample(n, generator=g)).cpu()
    model = diffusion.sample_images(aae, n, sampler="ode", seed=seed).cpu()
    return image_grids({"z ~ p(z) (AAE prior)": prior, "z ~ latent diffusion (ODE)": model})
