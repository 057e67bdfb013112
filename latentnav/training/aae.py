"""AAE training as in Makhzani et al. 2015 (DESIGN.md §2), orchestrated by Lightning.

Each minibatch: (a) reconstruction phase, E and G minimise the reconstruction loss; (b)
regularisation phase, D_z learns prior samples (label 1) against encoded data (label 0); (c) E
fools D_z with the non-saturating loss −log D_z(E(x)).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F

from latentnav._validate import MAX_SEED, check_choice, check_int, check_real
from latentnav.aae import AAE
from latentnav.metrics.mmd import mmd2
from latentnav.training.distributed import (
    average_gradients,
    backward_locally,
    local_share,
    parameters_of,
)
from latentnav.training.resume import generator_state, restore_generator
from latentnav.training.trainer import make_trainer

__all__ = [
    "TrainConfig",
    "AAETraining",
    "fit_aae",
    "reconstruction_loss",
    "discriminator_loss",
    "r1_penalty",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of the three phases (Adam; learning rates of the AAE paper's order): epochs
    and minibatch size, one learning rate per phase and Adam's betas, the reconstruction loss, a
    cosine decay to ``lr_final_fraction`` of each rate or constant rates, the R1 weight on D_z,
    the validation latents used for MMD², and the seed of the prior samples."""

    epochs: int = 10
    batch_size: int = 100
    lr_reconstruction: float = 1e-3
    lr_discriminator: float = 5e-4
    lr_generator: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    reconstruction: Literal["bce", "mse"] = "bce"
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    gradient_penalty: float = 1.0
    lr_final_fraction: float = 0.05
    mmd_points: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", 1)
        check_int(self.batch_size, "batch_size", 1)
        for name in ("lr_reconstruction", "lr_discriminator", "lr_generator"):
            check_real(getattr(self, name), name, 0, low_open=True)
        if not isinstance(self.betas, tuple | list) or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(self.betas))  # a list from JSON
        for i, beta in enumerate(self.betas):
            check_real(beta, f"betas[{i}]", 0, 1, high_open=True)
        check_choice(self.reconstruction, "reconstruction", ("bce", "mse"))
        check_choice(self.lr_schedule, "lr_schedule", ("cosine", "constant"))
        check_real(self.gradient_penalty, "gradient_penalty", 0)
        check_real(self.lr_final_fraction, "lr_final_fraction", 0, 1, low_open=True)
        check_int(self.mmd_points, "mmd_points", 2)  # MMD² needs two latents
        check_int(self.seed, "seed", 0, MAX_SEED)


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image reconstruction loss summed over pixels, averaged over the batch."""
    if kind == "bce":
        per_pixel = F.binary_cross_entropy(x_hat, x, reduction="none")
    elif kind == "mse":
        per_pixel = (x_hat - x).square()
    else:
        raise ValueError(f"reconstruction must be 'bce' or 'mse', got {kind!r}")
    return per_pixel.flatten(1).sum(1).mean()


def discriminator_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    """BCE with real (prior) = 1, fake (encoded) = 0."""
    return F.binary_cross_entropy_with_logits(
        logit_real, torch.ones_like(logit_real)
    ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))


def r1_penalty(logit_real: torch.Tensor, z_real: torch.Tensor) -> torch.Tensor:
    """½ E‖∇_z ℓ(z)‖² on prior samples (zero-centred R1, Mescheder et al. 2018)."""
    (grad,) = torch.autograd.grad(logit_real.sum(), z_real, create_graph=True)
    return 0.5 * grad.square().sum(1).mean()


class AAETraining(L.LightningModule):
    """Holds an :class:`AAE` and runs the three phases per step; batches are ``(x, y)``."""

    phases = ("recon", "d_loss", "g_loss")  # the losses of a step, in backward order

    def __init__(self, aae: AAE, config: TrainConfig | None = None):
        super().__init__()
        self.aae = aae
        self.config = config or TrainConfig()
        self.automatic_optimization = False
        self._generator: torch.Generator | None = None
        self._val_latents: list[torch.Tensor] = []

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["generators"] = {"prior": generator_state(self._generator)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._generator = restore_generator(checkpoint.get("generators", {}).get("prior"))

    def _prior_sample(self, n: int) -> torch.Tensor:
        """This process's n rows of the global batch's prior samples (``distributed``)."""
        if self._generator is None or self._generator.device != self.device:
            self._generator = torch.Generator(self.device).manual_seed(self.config.seed + 1)
        draw = partial(self.aae.prior.sample, generator=self._generator)
        return local_share(draw, n, self.global_rank, self.trainer.world_size)

    def _update(self, optimizer, loss: torch.Tensor, clip_norm: float = 0.0) -> None:
        """One phase's update: backward on this process, the optimiser's gradients averaged over
        the processes (:mod:`latentnav.training.distributed`), optional norm clipping, step."""
        optimizer.zero_grad(set_to_none=True)
        backward_locally(self, loss)
        parameters = parameters_of(optimizer)
        average_gradients(parameters, self.trainer.world_size)
        if clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
        optimizer.step()

    def configure_optimizers(self):
        c, aae = self.config, self.aae
        autoencoder = [*aae.encoder.parameters(), *aae.decoder.parameters()]
        optimizers = [
            torch.optim.Adam(autoencoder, lr=c.lr_reconstruction, betas=c.betas),
            torch.optim.Adam(aae.discriminator.parameters(), lr=c.lr_discriminator, betas=c.betas),
            torch.optim.Adam(aae.encoder.parameters(), lr=c.lr_generator, betas=c.betas),
        ]
        if c.lr_schedule == "constant":
            return optimizers
        if c.lr_schedule != "cosine":
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {c.lr_schedule!r}")
        # Cosine decay per epoch to lr_final_fraction of each rate: late adversarial steps settle.
        schedulers = [
            torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=max(c.epochs, 1), eta_min=opt.defaults["lr"] * c.lr_final_fraction
            )
            for opt in optimizers
        ]
        return optimizers, schedulers

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    def training_step(self, batch, batch_idx: int) -> None:
        """The three phases, each a backward over only the modules its optimiser steps (the
        others' weights frozen by ``toggled_optimizer``), so DDP runs them with
        ``find_unused_parameters=False``."""
        x = batch[0]
        opt_ae, opt_d, opt_g = self.optimizers()[:3]
        aae, n = self.aae, x.shape[0]

        # (a) Reconstruction phase: E and G.
        with self.toggled_optimizer(opt_ae):
            recon = reconstruction_loss(aae.decoder(aae.encoder(x)), x, self.config.reconstruction)
            self._update(opt_ae, recon)

        # (b) Regularisation phase, discriminator: prior = 1, encoded = 0; D_z only.
        with self.toggled_optimizer(opt_d):
            z_fake = aae.encoder(x).detach()
            z_real = self._prior_sample(n).requires_grad_(self.config.gradient_penalty > 0)
            logit_real, logit_fake = aae.discriminator(z_real), aae.discriminator(z_fake)
            d_loss = discriminator_loss(logit_real, logit_fake)
            if self.config.gradient_penalty > 0:
                d_loss = d_loss + self.config.gradient_penalty * r1_penalty(logit_real, z_real)
            self._update(opt_d, d_loss)

        # (c) Regularisation phase, encoder: non-saturating −log D_z(E(x)); E only, D_z frozen.
        with self.toggled_optimizer(opt_g):
            logit_gen = aae.discriminator(aae.encoder(x))
            g_loss = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
            self._update(opt_g, g_loss)

        self.log_dict(
            {
                "train/recon": recon.detach(),
                "train/d_loss": d_loss.detach(),
                "train/g_loss": g_loss.detach(),
                "train/d_acc_real": (logit_real > 0).float().mean(),
                "train/d_acc_fake": (logit_fake < 0).float().mean(),
            },
            prog_bar=False,
            on_step=False,
            on_epoch=True,
            sync_dist=True,
        )
        self.log("recon", recon.detach(), prog_bar=True, on_step=True, on_epoch=False)

    def validation_step(self, batch, batch_idx: int) -> None:
        x = batch[0]
        z = self.aae.encoder(x)
        recon = reconstruction_loss(self.aae.decoder(z), x, self.config.reconstruction)
        self.log("val/recon", recon, prog_bar=True, on_epoch=True)
        self._val_latents.append(z)

    def on_validation_epoch_end(self) -> None:
        if not self._val_latents:
            return
        z_fake = torch.cat(self._val_latents)[: self.config.mmd_points]
        self._val_latents.clear()
        g = torch.Generator(self.device).manual_seed(self.config.seed + 2)
        z_real = self.aae.prior.sample(len(z_fake), generator=g)
        logit_real, logit_fake = self.aae.discriminator(z_real), self.aae.discriminator(z_fake)
        accuracy = 0.5 * ((logit_real > 0).float().mean() + (logit_fake < 0).float().mean())
        self.log("val/d_acc", accuracy, prog_bar=True)
        if len(z_fake) >= 2:
            self.log("val/mmd2", mmd2(z_fake, z_real), prog_bar=True)


def fit_aae(
    aae: AAE,
    datamodule: L.LightningDataModule,
    config: TrainConfig | None = None,
    accelerator: str = "auto",
    log_dir: str | None = None,
    progress: bool = True,
    devices: int = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    callbacks: list[L.Callback] | None = None,
    ckpt_path: str | None = None,
) -> dict[str, float]:
    """Train ``aae`` in place with Lightning; returns the last logged metrics as floats.
    ``devices``, ``num_nodes``, ``strategy``: see :func:`make_trainer` (``config.batch_size`` is
    per device). ``ckpt_path``: resume from a :class:`latentnav.training.resume.LastCheckpoint`
    checkpoint (read with ``weights_only=True``)."""
    config = config or TrainConfig()
    trainer = make_trainer(
        config.epochs, accelerator, log_dir, progress, devices, num_nodes, strategy,
        callbacks=callbacks,
    )  # fmt: skip
    module = AAETraining(aae, config)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    aae.eval()
    return {k: float(v) for k, v in trainer.callback_metrics.items()}
