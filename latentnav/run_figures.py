"""The figures of a training run (:mod:`latentnav.runs`): reconstructions, latents over the prior,
the D_z map, the training curves from Lightning's CSV log, the score loss through both stages of a
joint run, and decoded prior against diffusion samples. :func:`draw_figures` draws each one
defensively: a figure that fails (a diverged run's contour levels) is skipped with a warning, so
the run still completes."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from matplotlib.figure import Figure

from latentnav.aae import AAE
from latentnav.data import ImageData
from latentnav.diffusion import LatentDiffusion
from latentnav.viz import discriminator_map, image_grid, image_grids, latent_scatter, save_figure

__all__ = [
    "aae_figures",
    "training_figure",
    "score_training_figure",
    "samples_figure",
    "draw_figures",
    "FigureWarning",
]


class FigureWarning(UserWarning):
    """A figure of a run could not be drawn; the run goes on without it."""


def draw_figures(figures: dict[str, Callable[[], object]]) -> dict[str, str]:
    """Call each ``{name: draw}``; returns ``{name: error}`` of those that raised (each one warned
    about as a :class:`FigureWarning`), so that one failing figure costs only itself."""
    failed = {}
    for name, draw in figures.items():
        try:
            draw()
        except Exception as err:  # noqa: BLE001 - a figure must not take the run down
            failed[name] = f"{type(err).__name__}: {err}"
            warnings.warn(f"{name} not drawn: {failed[name]}", FigureWarning, stacklevel=2)
    return failed


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


@torch.no_grad()
def samples_figure(aae: AAE, diffusion: LatentDiffusion, seed: int, n: int = 64) -> Figure:
    """Decoded prior samples G(z), z ~ p(z), beside decoded latent-diffusion samples."""
    g = torch.Generator(aae.device).manual_seed(seed)
    prior = aae.decode(aae.prior.sample(n, generator=g)).cpu()
    model = diffusion.sample_images(aae, n, sampler="ode", seed=seed).cpu()
    return image_grids({"z ~ p(z) (AAE prior)": prior, "z ~ latent diffusion (ODE)": model})
