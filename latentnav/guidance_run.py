"""The guidance jobs of the command line (DESIGN.md §5): train D_ψ(z, t) post hoc on a bundle, and
sample a bundle with discriminator guidance.

``train_guidance_run``: real latents are the encoder's on the training images, fake latents the
bundle's own samples (drawn once with a named sampler and cached beside the discriminator, keyed
by the bundle file and the sampling settings); writes ``guidance.safetensors``,
``guidance_report.json`` (held-out loss, per time bucket accuracy and calibration) and
``guidance_buckets.png``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from latentnav.checkpoint import atomic_path, load_tensors, save_tensors
from latentnav.guidance import guided_score, sample_guided
from latentnav.sampling import SampleResult, time_grid
from latentnav.time_discriminator import (
    TimeDiscriminator,
    TimeDiscriminatorFitConfig,
    TimeDiscriminatorReport,
    fit_time_discriminator,
)

__all__ = ["train_guidance_run", "guided_bundle_sample", "buckets_figure"]

FAKE_FORMAT = "latentnav.model_latents/1"


def _model_latents(diffusion, bundle: Path, out: Path, n: int, sampler: str, seed: int, progress):
    """n samples of the bundle's model, cached in ``out`` for the same bundle and settings."""
    stat = bundle.stat()
    key = {"bundle": str(bundle.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
           "n": n, "sampler": sampler, "seed": seed}  # fmt: skip
    cache = out / "model_latents.safetensors"
    if cache.is_file():
        tensors, meta = load_tensors(cache, FAKE_FORMAT)
        if meta == key:
            return tensors["z"], True
    z = diffusion.sample(n, sampler, seed=seed, progress=progress).z
    save_tensors(cache, {"z": z}, FAKE_FORMAT, key)
    return z, False


def train_guidance_run(
    bundle: str | os.PathLike,
    data: str,
    out: str | os.PathLike,
    *,
    samples: int = 10_000,
    sampler: str = "ode",
    hidden: tuple[int, ...] = (256, 256),
    config: TimeDiscriminatorFitConfig | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Fit a :class:`TimeDiscriminator` on a bundle post hoc (the main mode of DESIGN.md §5)."""
    from latentnav.data import load_dataset
    from latentnav.joint import encode_dataset, load_bundle

    bundle, out = Path(bundle), Path(out)
    config = config or TimeDiscriminatorFitConfig(progress=progress)
    aae, diffusion = load_bundle(bundle, device)
    real = encode_dataset(aae, load_dataset(data, "train").images)
    out.mkdir(parents=True, exist_ok=True)
    fake, cached = _model_latents(diffusion, bundle, out, samples, sampler, config.seed, progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        disc = TimeDiscriminator(aae.latent_dim, hidden=hidden).to(device)
    report = fit_time_discriminator(disc, diffusion.sde, real, fake, config)
    disc.save(out / "guidance.safetensors")
    summary = {
        "discriminator": str(out / "guidance.safetensors"),
        "real_latents": len(real),
        "model_latents": len(fake),
        "model_latents_cached": cached,
        "sampler": sampler,
        "best_step": report.best_step,
        "heldout_loss": report.heldout_loss,
        "heldout_accuracy": report.heldout_accuracy,
    }
    with atomic_path(out / "guidance_report.json") as tmp:
        tmp.write_text(json.dumps({**summary, "report": asdict(report)}, indent=2))
    from latentnav.viz import save_figure

    save_figure(buckets_figure(report), out / "guidance_buckets.png")
    return summary


def buckets_figure(report: TimeDiscriminatorReport) -> Figure:
    """Held-out accuracy and expected calibration error of D_ψ per time bucket."""
    fig = Figure(figsize=(7, 3))
    ax_acc, ax_ece = fig.subplots(1, 2)
    labels = [f"{b['t_low']:.2f}–{b['t_high']:.2f}" for b in report.buckets]
    ax_acc.bar(labels, [b["accuracy"] for b in report.buckets], color="tab:blue")
    ax_acc.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax_acc.set(title="held-out accuracy (0.5 = no signal)", xlabel="t", ylim=(0.4, 1))
    ax_ece.bar(labels, [b["ece"] for b in report.buckets], color="tab:orange")
    ax_ece.set(title="expected calibration error", xlabel="t")
    for ax in (ax_acc, ax_ece):
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.tight_layout()
    return fig


def guided_bundle_sample(
    diffusion,
    discriminator_path: str | os.PathLike,
    n: int,
    sampler: str,
    *,
    steps: int | None,
    seed: int,
    guidance: dict[str, Any],
    **options,
) -> SampleResult:
    """n guided samples of ``diffusion`` with the D_ψ saved at ``discriminator_path``;
    ``guidance``: guided_score's options (weight, corrector_weight, schedule, t_min, t_max,
    clip) plus sample_guided's boost_rounds / boost_time; ``options`` go to the sampler."""
    from latentnav.sampling import SAMPLERS

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {sampler!r}")
    disc = TimeDiscriminator.load(discriminator_path, diffusion.device)
    if disc.latent_dim != diffusion.latent_dim:
        raise ValueError(
            f"--guidance: a discriminator of latent dim {disc.latent_dim} for a model of latent "
            f"dim {diffusion.latent_dim}"
        )
    boost = {k: guidance.pop(k) for k in ("boost_rounds", "boost_time") if k in guidance}
    sde = diffusion.sde
    guided = guided_score(diffusion.score_fn(), disc, T=sde.T, **guidance)
    steps = steps if steps is not None else (SAMPLERS[sampler].default_steps or 1)
    g = torch.Generator(diffusion.device).manual_seed(seed)
    z_T = sde.prior_sample((n, diffusion.latent_dim), generator=g, device=diffusion.device)
    ts = time_grid(sde, steps, device=diffusion.device)
    diffusion.eval()
    return sample_guided(guided, sde, z_T, ts, sampler, generator=g, **boost, **options)
