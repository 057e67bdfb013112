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
from latentnav.data import ImageData, ImageDataModule
from latentnav.metrics.mmd import mmd2
from latentnav.training import TrainConfig, fit_aae, reconstruction_loss
from latentnav.viz import discriminator_map, image_grid, latent_scatter, save_figure

__all__ = ["RunConfig", "train_aae_run", "evaluate_aae", "aae_figures"]


@dataclass
class RunConfig:
    data: str = "mnist-embedded"
    out_dir: str = "latentnav-run"
    accelerator: str = "auto"
    model: AAEConfig = field(default_factory=AAEConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


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


def train_aae_run(config: RunConfig, progress: bool = True) -> tuple[AAE, dict[str, Any]]:
    """Train an AAE on ``config.data`` and write every artefact into ``config.out_dir``."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = config.train.seed
    datamodule = ImageDataModule.from_spec(
        config.data, batch_size=config.train.batch_size, seed=seed
    )
    datamodule.setup()
    model_config = config.model
    if model_config.image_shape != datamodule.image_shape:
        model_config = AAEConfig(**{**asdict(model_config), "image_shape": datamodule.image_shape})
    aae = build_aae(model_config, seed)
    start = time.perf_counter()
    fit_aae(aae, datamodule, config.train, config.accelerator, log_dir=str(out), progress=progress)
    wall = time.perf_counter() - start
    aae.save(out / "aae.safetensors")
    metrics = {
        "wall_time_s": wall,
        "device": str(aae.device),
        "test": evaluate_aae(aae, datamodule.test_data, seed=seed),
        "config": {
            "data": config.data,
            "model": asdict(model_config),
            "train": asdict(config.train),
        },
    }
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    aae_figures(aae, datamodule.test_data, out)
    fig = training_figure(out / "metrics.csv")
    if fig is not None:
        save_figure(fig, out / "training.png")
    return aae, metrics
