"""Everything Lightning orchestrates: the AAE's three phases (DESIGN.md §2) and the latent
diffusion model's score matching (DESIGN.md §4). Models stay plain ``nn.Module``s elsewhere."""

from latentnav.training.aae import (
    AAETraining,
    TrainConfig,
    discriminator_loss,
    fit_aae,
    r1_penalty,
    reconstruction_loss,
)
from latentnav.training.diffusion import DiffusionTraining, fit_diffusion
from latentnav.training.joint import JointTraining
from latentnav.training.trainer import device_generator, make_trainer

__all__ = [
    "TrainConfig",
    "AAETraining",
    "fit_aae",
    "reconstruction_loss",
    "discriminator_loss",
    "r1_penalty",
    "make_trainer",
    "device_generator",
    "DiffusionTraining",
    "fit_diffusion",
    "JointTraining",
]
