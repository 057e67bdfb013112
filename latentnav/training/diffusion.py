"""Score matching of the latent diffusion model on fixed latents (DESIGN.md §4), orchestrated by
Lightning."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
import torch

from latentnav._checks import check_latents
from latentnav.data.datamodule import EpochShuffle
from latentnav.training.resume import generator_state, restore_generator
from latentnav.training.trainer import device_generator, make_trainer

if TYPE_CHECKING:
    from latentnav.diffusion import LatentDiffusion

__all__ = ["DiffusionTraining", "fit_diffusion"]


class DiffusionTraining(L.LightningModule):
    """Score matching of a :class:`~latentnav.diffusion.LatentDiffusion` on fixed latents
    (DESIGN.md §4): Adam with a cosine schedule, EMA after every batch, the held-out loss on
    fixed noise per batch index."""

    phases = ("score",)

    def __init__(self, diffusion: LatentDiffusion):
        super().__init__()
        self.diffusion = diffusion
        self._generator: torch.Generator | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["generators"] = {"noise": generator_state(self._generator)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._generator = restore_generator(checkpoint.get("generators", {}).get("noise"))

    def configure_optimizers(self):
        c = self.diffusion.config
        opt = torch.optim.Adam(self.diffusion.net.parameters(), lr=c.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(c.epochs, 1), eta_min=c.lr * c.lr_final_fraction
        )
        return [opt], [sched]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        seed = self.diffusion.config.seed + 3
        self._generator = device_generator(self._generator, self.device, seed)
        loss = self.diffusion.loss(batch[0], generator=self._generator)
        self.log("train/score_loss", loss.detach(), prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def on_train_batch_end(self, *args) -> None:
        self.diffusion.update_ema()

    def validation_step(self, batch, batch_idx: int) -> None:
        g = torch.Generator(self.device).manual_seed(self.diffusion.config.seed + 4 + batch_idx)
        self.log("val/score_loss", self.diffusion.loss(batch[0], generator=g), prog_bar=True)


def fit_diffusion(
    model: LatentDiffusion,
    latents: torch.Tensor,
    val_latents: torch.Tensor | None = None,
    accelerator: str = "auto",
    log_dir: str | None = None,
    progress: bool = True,
    epochs: int | None = None,
    callbacks: list[L.Callback] | None = None,
    ckpt_path: str | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on fixed latents ``(N, d)`` (e.g. a frozen encoder's);
    ``ckpt_path``: resume from a :class:`latentnav.training.resume.LastCheckpoint` checkpoint."""
    check_latents(latents, model.latent_dim, "latents")
    c = model.config
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(latents.detach().cpu()),
        batch_size=c.batch_size,
        sampler=EpochShuffle(len(latents), c.seed),  # order a function of (seed, epoch)
        drop_last=len(latents) > c.batch_size,
    )
    val = None
    if val_latents is not None:
        check_latents(val_latents, model.latent_dim, "val_latents")
        val = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(val_latents.detach().cpu()), batch_size=4096
        )
    trainer = make_trainer(
        epochs or c.epochs, accelerator, log_dir, progress, gradient_clip_val=c.grad_clip or None,
        callbacks=callbacks,
    )  # fmt: skip
    trainer.fit(DiffusionTraining(model), loader, val, ckpt_path=ckpt_path, weights_only=True)
    model.eval()
    return {k: float(v) for k, v in trainer.callback_metrics.items()}
