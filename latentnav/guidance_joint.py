"""Joint training of the time-dependent discriminator with the score model: the ablation of
DESIGN.md §5 (post hoc on a frozen score model is the main mode, :mod:`latentnav.guidance_run`).

Rounds r = 1..R alternate (a) ``score_epochs`` epochs of score matching on the real latents
(continuing from the current weights; each round a fresh Adam and cosine schedule, as
:func:`~latentnav.training.fit_diffusion` gives), (b) ``samples`` fresh model latents from the
current score model with a named sampler, and (c) ``disc_config.max_steps`` steps of D_ψ's BCE on
real against those fakes, warm-started from the previous round. After the last round D_ψ has seen
the final model's samples for only one round's steps, which is what joint training trades against
the post-hoc fit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from latentnav._checks import check_latents
from latentnav._validate import check_int
from latentnav.time_discriminator import TimeDiscriminatorFitConfig, fit_time_discriminator

__all__ = ["JointGuidanceConfig", "fit_guidance_jointly"]


@dataclass(frozen=True)
class JointGuidanceConfig:
    """R ``rounds`` of ``score_epochs`` score epochs, ``samples`` model latents drawn with
    ``sampler`` (seed ``seed + r``) and D_ψ steps as in ``disc`` (its seed advanced per round)."""

    rounds: int = 4
    score_epochs: int = 5
    samples: int = 10_000
    sampler: str = "ode"
    seed: int = 0
    disc: TimeDiscriminatorFitConfig = field(default_factory=TimeDiscriminatorFitConfig)

    def __post_init__(self) -> None:
        check_int(self.rounds, "rounds", 1)
        check_int(self.score_epochs, "score_epochs", 0)
        check_int(self.samples, "samples", 2)
        check_int(self.seed, "seed", 0)
        from latentnav.sampling import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {self.sampler!r}")


def fit_guidance_jointly(
    diffusion: nn.Module,
    discriminator: nn.Module,
    real: torch.Tensor,
    val_real: torch.Tensor | None = None,
    config: JointGuidanceConfig | None = None,
    *,
    accelerator: str = "cpu",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train ``diffusion`` (a :class:`~latentnav.diffusion.LatentDiffusion`) and
    ``discriminator`` D_ψ(z, t) in place, alternating per round; ``real: (N, d)`` clean data
    latents. Returns one record per round: its held-out D_ψ loss and accuracy and the last
    fakes' size."""
    from latentnav.training import fit_diffusion

    config = config or JointGuidanceConfig()
    check_latents(real, diffusion.latent_dim, "real")
    if val_real is not None:
        check_latents(val_real, diffusion.latent_dim, "val_real")
    records = []
    for r in range(config.rounds):
        if config.score_epochs:
            fit_diffusion(diffusion, real, val_real, accelerator, None, progress,
                          epochs=config.score_epochs)  # fmt: skip
        diffusion.eval()
        fake = diffusion.sample(config.samples, config.sampler, seed=config.seed + r).z
        disc_config = dataclasses.replace(config.disc, seed=config.disc.seed + r)
        report = fit_time_discriminator(discriminator, diffusion.sde, real, fake, disc_config)
        records.append({"round": r + 1, "heldout_loss": report.heldout_loss,
                        "heldout_accuracy": report.heldout_accuracy,
                        "fakes": len(fake)})  # fmt: skip
    return records
