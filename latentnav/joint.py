"""The AAE and its latent diffusion model trained in one run (DESIGN.md §1, §4 "trains alongside").

Schedule:
1. Joint stage (``train.epochs`` epochs). Every minibatch runs the AAE's three phases (training.py),
   then one score-matching step on the *current* encoder latents E(x), detached: the score model
   follows q(z) as the encoder moves, and never pushes gradients into the encoder.
2. Fine-tune stage (``diffusion.epochs`` epochs). The encoder is frozen; the score model trains on
   the fixed latents of the training images, with a fresh Adam and a cosine schedule.
Both stages log the held-out score loss (fixed noise, so epochs are comparable) and the joint stage
logs the encoder's drift, ‖E_k(x) − E_{k−1}(x)‖ / ‖E_k(x)‖ on validation images, so that a figure
shows the score loss following the encoder. Everything is saved as one bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from latentnav.aae import AAE
from latentnav.checkpoint import CheckpointError, build_checked, save_tensors
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.training import AAETraining, TrainConfig, device_generator

__all__ = ["JointTraining", "save_bundle", "load_bundle", "BUNDLE_FORMAT", "encode_dataset"]

BUNDLE_FORMAT = "latentnav.bundle/1"


class JointTraining(AAETraining):
    """:class:`AAETraining` plus a score-matching step per minibatch on detached latents."""

    def __init__(self, aae: AAE, diffusion: LatentDiffusion, config: TrainConfig | None = None):
        super().__init__(aae, config)
        self.diffusion = diffusion
        self._previous_val: torch.Tensor | None = None
        self._score_generator: torch.Generator | None = None

    def configure_optimizers(self):
        out = super().configure_optimizers()
        optimizers, schedulers = out if isinstance(out, tuple) else (out, [])
        score_opt = torch.optim.Adam(self.diffusion.net.parameters(), lr=self.diffusion.config.lr)
        return [*optimizers, score_opt], schedulers

    def training_step(self, batch, batch_idx: int) -> None:
        super().training_step(batch, batch_idx)
        score_opt = self.optimizers()[3]
        with torch.no_grad():
            z = self.aae.encoder(batch[0])
        seed = self.diffusion.config.seed + 3
        self._score_generator = device_generator(self._score_generator, self.device, seed)
        loss = self.diffusion.loss(z, generator=self._score_generator)
        score_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.diffusion.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                self.diffusion.net.parameters(), self.diffusion.config.grad_clip
            )
        score_opt.step()
        self.diffusion.update_ema()
        self.log("train/score_loss", loss.detach(), on_step=False, on_epoch=True)

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


@torch.no_grad()
def encode_dataset(aae: AAE, images: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """E(x) for all ``images: (N, ...)`` on the AAE's device: (N, d)."""
    aae.eval()
    chunks = [
        aae.encode(images[i : i + batch_size].to(aae.device))
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks)


def save_bundle(path: str | os.PathLike, aae: AAE, diffusion: LatentDiffusion) -> Path:
    """AAE and latent diffusion in one safetensors file (atomic); read by :func:`load_bundle`."""
    from dataclasses import asdict

    aae_config = aae.to_config()
    tensors = {f"aae.{k}": v for k, v in aae.state_dict().items()}
    tensors |= {f"diffusion.{k}": v for k, v in diffusion.state_dict().items()}
    config = {"aae": aae_config, "diffusion": asdict(diffusion.config)}
    return save_tensors(path, tensors, BUNDLE_FORMAT, config)


def load_bundle(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[AAE, LatentDiffusion]:
    """(aae, diffusion) from :func:`save_bundle`'s file; each part's shapes are checked against
    its config before allocating, parts of different latent sizes are refused, and no code from
    the file is executed."""
    aae = build_checked(lambda c: AAE.from_config(c["aae"]), path, BUNDLE_FORMAT, device, "aae.")
    diffusion = build_checked(
        lambda c: LatentDiffusion.from_config(c["diffusion"]), path, BUNDLE_FORMAT, device,
        "diffusion.",
    )  # fmt: skip
    if aae.latent_dim != diffusion.latent_dim:
        raise CheckpointError(
            f"{path} pairs an AAE of latent dim {aae.latent_dim} with a diffusion model of "
            f"latent dim {diffusion.latent_dim}"
        )
    return aae.eval(), diffusion.eval()


def default_diffusion_config(latent_dim: int, **overrides) -> DiffusionConfig:
    """A :class:`DiffusionConfig` whose score network matches ``latent_dim``."""
    from dataclasses import replace

    from latentnav.score_net import ScoreNetConfig

    net = overrides.pop("net", None) or ScoreNetConfig(latent_dim=latent_dim)
    if net.latent_dim != latent_dim:
        net = replace(net, latent_dim=latent_dim)
    return DiffusionConfig(net=net, **overrides)
