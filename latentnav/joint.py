"""The AAE and its latent diffusion model trained in one run (DESIGN.md §1, §4): the bundle that
holds both, and the helpers around it. The joint schedule itself (:class:`JointTraining`) lives in
:mod:`latentnav.training.joint`."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from latentnav.aae import AAE
from latentnav.checkpoint import CheckpointError, build_checked, save_tensors
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.training.joint import JointTraining

__all__ = ["JointTraining", "save_bundle", "load_bundle", "BUNDLE_FORMAT", "encode_dataset"]

BUNDLE_FORMAT = "latentnav.bundle/1"


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
