"""Compass calibration (DESIGN.md §3): refit a discriminator on the frozen encoder.

At the end of AAE training D_z is a moving adversary, not the optimal discriminator for the final
encoder. The compass is a fresh :class:`LatentDiscriminator` trained to convergence on prior
samples (label 1) against encoded training images (label 0), early-stopped on held-out BCE, so
that its logit estimates log p(z) − log q(z) for the encoder as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from latentnav._modules import evaluating
from latentnav.checkpoint import build_checked, save_tensors
from latentnav.density_ratio import (
    RatioFitConfig,
    calibration,
    evaluate_ratio,
    fit_density_ratio,
)
from latentnav.networks import LatentDiscriminator

__all__ = ["CompassConfig", "fit_compass", "save_compass", "load_compass", "encode_all"]

CHECKPOINT_FORMAT = "latentnav.compass/1"


@dataclass
class CompassConfig:
    hidden: tuple[int, ...] = (512, 512)
    spectral_norm: bool = False
    prior_samples_per_image: int = 1
    temperature_scaling: bool = True

    def __post_init__(self) -> None:
        if self.spectral_norm and self.temperature_scaling:
            raise ValueError("spectral_norm=True needs temperature_scaling=False")

    fit: RatioFitConfig = field(
        default_factory=lambda: RatioFitConfig(
            max_steps=6000,
            batch_size=1024,
            lr=1e-3,
            eval_every=200,
            patience=8,
            gradient_penalty=0.1,
        )
    )


@torch.no_grad()
def encode_all(aae: torch.nn.Module, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """E(x) for images (N, *image_shape) on the AAE's device (the images' if it has no weights)
    → (N, d)."""
    device = next(aae.parameters(), images).device
    return torch.cat([aae.encode(x.to(device)) for x in images.split(batch_size)])


def fit_compass(
    aae: torch.nn.Module,
    images: torch.Tensor,
    validation: torch.Tensor | None = None,
    config: CompassConfig | None = None,
) -> tuple[LatentDiscriminator, dict[str, Any]]:
    """Train a compass on ``images: (N, *image_shape)``; report held-out accuracy and calibration
    (on ``validation`` images against fresh prior samples when given)."""
    config = config or CompassConfig()
    with evaluating(aae):
        z_fake = encode_all(aae, images)
        device = z_fake.device
        g = torch.Generator(device).manual_seed(config.fit.seed + 7)
        z_real = aae.prior.sample(len(z_fake) * config.prior_samples_per_image, generator=g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.fit.seed)
            compass = LatentDiscriminator(aae.latent_dim, config.hidden, config.spectral_norm)
        compass = compass.to(device)
        result = fit_density_ratio(compass, z_real, z_fake, config.fit)
        report: dict[str, Any] = {
            "heldout_accuracy": result.heldout_accuracy,
            "heldout_loss": result.heldout_loss,
            "best_step": result.best_step,
        }
        if validation is not None:
            z_val = encode_all(aae, validation)
            z_prior = aae.prior.sample(len(z_val), generator=g)
            if config.temperature_scaling:
                # Fit the scale on the first half of the validation latents, report on the second.
                half = len(z_val) // 2
                report["temperature"] = temperature_scale(compass, z_prior[:half], z_val[:half])
                z_val, z_prior = z_val[half:], z_prior[half:]
            report["validation_calibration"] = calibration(compass, z_prior, z_val)
            own = aae.discriminator
            report["validation_accuracy"] = {
                "aae_discriminator": evaluate_ratio(own, z_prior, z_val)[1],
                "compass": evaluate_ratio(compass, z_prior, z_val)[1],
            }
            report["aae_discriminator_calibration"] = calibration(own, z_prior, z_val)
    return compass.eval(), report


@torch.no_grad()
def temperature_scale(
    compass: LatentDiscriminator, real: torch.Tensor, fake: torch.Tensor
) -> float:
    """Platt-style scaling ℓ ← a·ℓ, a > 0 minimising balanced BCE on held-out real (1) and fake
    (0) latents (N, d); folded into the last linear layer. Returns a."""
    if compass.spectral_norm:  # spectral norm would renormalise the scaled weight away
        raise ValueError("temperature scaling needs a compass without spectral norm")
    logit_real, logit_fake = compass(real), compass(fake)
    log_a = torch.zeros((), device=real.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_a], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        with torch.enable_grad():
            a = log_a.exp()
            loss = F.softplus(-a * logit_real).mean() + F.softplus(a * logit_fake).mean()
            loss.backward()
        return loss

    optimizer.step(closure)
    a = float(log_a.exp())
    last = [m for m in compass.net if isinstance(m, torch.nn.Linear)][-1]
    last.weight.mul_(a)
    last.bias.mul_(a)
    return a


def save_compass(compass: LatentDiscriminator, path: str | os.PathLike) -> Path:
    """Weights and architecture in one safetensors file, written atomically."""
    config = {
        "latent_dim": compass.latent_dim,
        "hidden": list(compass.hidden),
        "spectral_norm": compass.spectral_norm,
    }
    return save_tensors(path, compass.state_dict(), CHECKPOINT_FORMAT, config)


def load_compass(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> LatentDiscriminator:
    """:func:`save_compass`'s file, shapes checked against its config before allocating."""

    def factory(c: dict[str, Any]) -> LatentDiscriminator:
        return LatentDiscriminator(c["latent_dim"], tuple(c["hidden"]), c["spectral_norm"])

    return build_checked(factory, path, CHECKPOINT_FORMAT, device).eval()
