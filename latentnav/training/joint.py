"""The AAE and its latent diffusion model trained in one run (DESIGN.md §1, §4 "trains alongside").

Schedule:
1. Joint stage (``train.epochs`` epochs). Every minibatch runs the AAE's three phases,
   then one score-matching step on the *current* encoder latents E(x), detached: the score model
   follows q(z) as the encoder moves, and never pushes gradients into the encoder.
2. Fine-tune stage (``diffusion.epochs`` epochs). The encoder is frozen; the score model trains on
   the fixed latents of the training images, with a fresh Adam and a cosine schedule.
Both stages log the held-out score loss (fixed noise, so epochs are comparable) and the joint stage
logs the encoder's drift, ‖E_k(x) − E_{k−1}(x)‖ / ‖E_k(x)‖ on validation images, so that a figure
shows the score loss following the encoder. Everything is saved as one bundle.
"""

from __future__ import annotations

import torch

from latentnav.aae import AAE
from latentnav.diffusion import LatentDiffusion
from latentnav.training.aae import AAETraining, TrainConfig
from latentnav.training.distributed import gather_batch
from latentnav.training.resume import generator_state, restore_generator
from latentnav.training.trainer import device_generator

__all__ = ["JointTraining"]


class JointTraining(AAETraining):
    """:class:`AAETraining` plus a score-matching step per minibatch on detached latents."""

    phases = (*AAETraining.phases, "score")

    def __init__(self, aae: AAE, diffusion: LatentDiffusion, config: TrainConfig | None = None):
        super().__init__(aae, config)
        self.diffusion = diffusion
        self._previous_val: torch.Tensor | None = None
        self._score_generator: torch.Generator | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["generators"]["score"] = generator_state(self._score_generator)
        checkpoint["previous_val"] = self._previous_val  # the encoder drift's reference

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._score_generator = restore_generator(checkpoint["generators"].get("score"))
        self._previous_val = checkpoint.get("previous_val")

    def configure_optimizers(self):
        out = super().configure_optimizers()
        optimizers, schedulers = out if isinstance(out, tuple) else (out, [])
        score_opt = torch.optim.Adam(self.diffusion.net.parameters(), lr=self.diffusion.config.lr)
        return [*optimizers, score_opt], schedulers

    def training_step(self, batch, batch_idx: int) -> None:
        """The AAE's phases, then the score step on the global batch's detached latents: every
        process gathers them and computes the same loss with the same noise (the score net's
        gradients agree across processes before the average, which only guards that)."""
        super().training_step(batch, batch_idx)
        score_opt = self.optimizers()[3]
        with torch.no_grad():
            z = gather_batch(self.aae.encoder(batch[0]), self.trainer.world_size)
        seed = self.diffusion.config.seed + 3
        self._score_generator = device_generator(self._score_generator, self.device, seed)
        loss = self.diffusion.loss(z, generator=self._score_generator)
        self._update(score_opt, loss, self.diffusion.config.grad_clip)
        self.diffusion.update_ema()
        self.log("train/score_loss", loss.detach(), on_step=False, on_epoch=True, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self._val_latents:
            z = torch.cat(self._val_latents)
            g = torch.Generator(self.device).manual_seed(self.config.seed + 5)
            with torch.no_grad():
                self.log("val/score_loss", self.diffusion.loss(z, generator=g), prog_bar=True)
            if self._previous_val is not None and len(self._previous_val) == len(z):
                drift = (z - self._previous_val).norm(dim=1).mean() / z.norm(dim=1).mean()
                self.log("val/encoder_drift", drift)
            self._previous_val = z.detach()
        super().on_validation_epoch_end()
