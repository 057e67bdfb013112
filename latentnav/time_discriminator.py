"""A time-dependent discriminator D_ψ(z, t) = σ(ℓ_ψ(z, t)) as a density-ratio estimator over the
diffused marginals (DESIGN.md §5, seed 000 §3.4).

Trained with BCE on real z_t ~ p_t^data (forward-diffused encoder latents, label 1) against fake
z_t ~ p_t^model (forward-diffused samples of the score model, label 0), both diffused to the same t,
the optimal logit at every t is ℓ*(z, t) = log p_t^data(z) − log p_t^model(z) (DESIGN.md §2 at each
t), and ∇_z ℓ* is the piece of the score the model got wrong. Any law of t with full support on
[eps, T] keeps that pointwise optimum, so the time samplers below change where capacity goes, not
the target. Shapes: ``z: (B, d)``, ``t: (B,)``, ``y: (B,)`` long or None.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from latentnav._checks import check_latents, check_positive
from latentnav.checkpoint import CheckpointError, load_into, load_tensors, save_tensors
from latentnav.density_ratio import evaluate_ratio
from latentnav.ratio_fidelity import TimeColumn, evaluate_time_discriminator
from latentnav.score_net import time_embedding
from latentnav.sde import SDE

__all__ = [
    "CHECKPOINT_FORMAT",
    "TIME_SAMPLERS",
    "TimeDiscriminator",
    "TimeDiscriminatorFitConfig",
    "TimeDiscriminatorReport",
    "fit_time_discriminator",
]

CHECKPOINT_FORMAT = "latentnav.time_discriminator/1"


class TimeDiscriminator(nn.Module):
    """ℓ_ψ(z, t[, y]) → logit (B,): an MLP on z whose every hidden layer adds a projection of the
    sinusoidal time embedding (score_net.time_embedding) and, with ``num_classes``, of a label
    embedding (index ``num_classes`` = no label). SiLU, not ReLU, so ∇_z ℓ_ψ is smooth."""

    def __init__(
        self,
        latent_dim: int,
        hidden: Sequence[int] = (256, 256),
        embed_dim: int = 64,
        num_classes: int | None = None,
    ):
        super().__init__()
        hidden = tuple(hidden)
        if not (isinstance(latent_dim, int) and latent_dim >= 1):
            raise ValueError(f"latent_dim must be an int ≥ 1, got {latent_dim!r}")
        if not hidden or not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of ints ≥ 1, got {hidden!r}")
        if not (isinstance(embed_dim, int) and embed_dim >= 2 and embed_dim % 2 == 0):
            raise ValueError(f"embed_dim must be an even int ≥ 2, got {embed_dim!r}")
        if num_classes is not None and not (isinstance(num_classes, int) and num_classes >= 1):
            raise ValueError(f"num_classes must be None or an int ≥ 1, got {num_classes!r}")
        self.latent_dim, self.hidden, self.embed_dim = latent_dim, hidden, embed_dim
        self.num_classes = num_classes
        self.time = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim)
        )
        if num_classes:
            self.label = nn.Embedding(num_classes + 1, embed_dim)
        widths = (latent_dim, *hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, hidden, strict=False))
        self.embeds = nn.ModuleList(nn.Linear(embed_dim, b) for b in hidden)
        self.out = nn.Linear(hidden[-1], 1)

    def config(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "embed_dim": self.embed_dim,
            "num_classes": self.num_classes,
        }

    def forward(
        self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logit ℓ_ψ(z, t, y): ``z: (B, d)``, ``t: (B,)`` → (B,)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        if t.shape != z.shape[:1]:
            raise ValueError(f"t must have shape ({z.shape[0]},), got {tuple(t.shape)}")
        e = self.time(time_embedding(t, self.embed_dim).to(z.dtype))
        if self.num_classes:
            if y is None:
                y = torch.full_like(t, self.num_classes, dtype=torch.long)
            e = e + self.label(y)
        elif y is not None:
            raise ValueError("y was given but this TimeDiscriminator has no num_classes")
        e = F.silu(e)
        h = z
        for layer, embed in zip(self.layers, self.embeds, strict=True):
            h = F.silu(layer(h) + embed(e))
        return self.out(h).squeeze(-1)

    def save(self, path: str | os.PathLike) -> Path:
        """Weights and architecture in one safetensors file, written atomically."""
        return save_tensors(path, self.state_dict(), CHECKPOINT_FORMAT, self.config())

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> TimeDiscriminator:
        tensors, config = load_tensors(path, CHECKPOINT_FORMAT, device)
        try:
            model = cls(**config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path} has an invalid TimeDiscriminator config: {err}") from err
        load_into(model, tensors, Path(path))
        return model.to(device).eval()


def _uniform(u: torch.Tensor) -> torch.Tensor:
    return u


def _near_data(u: torch.Tensor) -> torch.Tensor:
    """u² on [0, 1]: density ∝ 1/√u, more draws near t = eps where the ratio is most structured."""
    return u.square()


# Maps u ~ U(0, 1) to a fraction of [eps, T]: t = eps + (T − eps)·φ(u).
TIME_SAMPLERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "uniform": _uniform,
    "near_data": _near_data,
}


@dataclass(frozen=True)
class TimeDiscriminatorFitConfig:
    """Adam on balanced BCE; real and fake halves of a batch share the same t draws. Held-out BCE
    (on ``eval_repeats`` fixed (t, ε) draws per held-out point) every ``eval_every`` steps; stop
    after ``patience`` evaluations without improvement and restore the best weights. The report
    splits [eps, T] into ``buckets`` equal intervals."""

    max_steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3
    lr_decay: bool = True
    weight_decay: float = 0.0
    eps: float = 1e-3
    time_sampler: str = "uniform"
    holdout_fraction: float = 0.2
    eval_repeats: int = 4
    eval_every: int = 50
    patience: int = 10
    buckets: int = 5
    calibration_bins: int = 10
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("max_steps", "eval_repeats", "eval_every", "patience", "buckets"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(
                f"batch_size must be an int ≥ 2 (half real, half fake), got {self.batch_size!r}"
            )
        if not isinstance(self.calibration_bins, int) or self.calibration_bins < 1:
            raise ValueError(f"calibration_bins must be an int ≥ 1, got {self.calibration_bins!r}")
        check_positive(self.lr, "lr")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be ≥ 0, got {self.weight_decay}")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.time_sampler not in TIME_SAMPLERS:
            raise ValueError(
                f"time_sampler must be one of {sorted(TIME_SAMPLERS)}, got {self.time_sampler!r}"
            )


@dataclass
class TimeDiscriminatorReport:
    """``history``: per evaluation, step, train_loss, heldout_loss, heldout_accuracy. ``buckets``:
    per time interval, t_low, t_high, n_real, n_fake, loss, accuracy, ece, brier and the
    reliability bins (``calibration``) of the best weights on the held-out draws."""

    history: dict[str, list[float]] = field(default_factory=dict)
    best_step: int = 0
    heldout_loss: float = math.nan
    heldout_accuracy: float = math.nan
    buckets: list[dict[str, Any]] = field(default_factory=list)


class _Latents:
    """Clean latents ``z0: (N, d)`` with optional labels ``y: (N,)``, drawn by index."""

    def __init__(self, z0: torch.Tensor, y: torch.Tensor | None, d: int | None, name: str = ""):
        if name:  # a user's tensor; subsets of it are not checked again
            check_latents(z0, d, name)
            if y is not None and (y.shape != z0.shape[:1] or y.is_floating_point()):
                raise ValueError(f"labels of {name} must be an int tensor of shape ({len(z0)},)")
        self.z0, self.y = z0.detach(), y

    def __len__(self) -> int:
        return len(self.z0)

    def take(self, idx: torch.Tensor) -> _Latents:
        return _Latents(self.z0[idx], None if self.y is None else self.y[idx], None)

    def split(self, fraction: float, gen: torch.Generator) -> tuple[_Latents, _Latents]:
        """(train, held-out), ``fraction`` of the points held out (≥ 1 each)."""
        n_hold = min(len(self) - 1, max(1, round(fraction * len(self))))
        perm = torch.randperm(len(self), generator=gen, device=self.z0.device)
        return self.take(perm[n_hold:]), self.take(perm[:n_hold])

    def diffused(
        self, sde: SDE, t: torch.Tensor, gen: torch.Generator, dtype: torch.dtype
    ) -> torch.Tensor:
        """Rows z_t ⊕ t [⊕ y] with z_t = m(t) z0 + s(t) ε: (N, d + 1 [+ 1])."""
        z0 = self.z0.to(dtype)
        noise = torch.randn(z0.shape, generator=gen, device=z0.device, dtype=dtype)
        cols = [sde.perturb(z0, t, noise)[0], t[:, None]]
        return torch.cat(cols + ([] if self.y is None else [self.y[:, None].to(dtype)]), 1)


def fit_time_discriminator(
    disc: nn.Module,
    sde: SDE,
    real_z0: torch.Tensor,
    fake_z0: torch.Tensor,
    config: TimeDiscriminatorFitConfig,
    val_real: torch.Tensor | None = None,
    val_fake: torch.Tensor | None = None,
    *,
    real_y: torch.Tensor | None = None,
    fake_y: torch.Tensor | None = None,
    val_real_y: torch.Tensor | None = None,
    val_fake_y: torch.Tensor | None = None,
) -> TimeDiscriminatorReport:
    """Train ``disc(z, t[, y]) → logit (B,)`` in place so that ℓ_ψ ≈ log p_t^data − log p_t^model.

    ``real_z0: (N, d)`` clean data latents, ``fake_z0: (M, d)`` clean model samples (generated once
    by the caller). Without ``val_real``/``val_fake`` a ``holdout_fraction`` of each is held out.
    With labels (``*_y: (N,)`` long, all of them or none) the discriminator is class-conditional.
    Runs on ``real_z0``'s device; restores the best held-out weights, leaves ``disc`` in eval mode.
    """
    labelled = real_y is not None
    given = [fake_y] + ([] if val_real is None else [val_real_y, val_fake_y])
    if any((y is not None) != labelled for y in given):
        raise ValueError("give labels for all of real_z0, fake_z0 (and val_real, val_fake) or none")
    real = _Latents(real_z0, real_y, None, "real_z0")
    fake = _Latents(fake_z0, fake_y, real_z0.shape[1], "fake_z0")
    if not 0 < config.eps < sde.T:
        raise ValueError(f"config.eps must be in (0, sde.T = {sde.T}), got {config.eps}")
    if (val_real is None) != (val_fake is None):
        raise ValueError("give both val_real and val_fake, or neither")
    device, dtype = real_z0.device, real_z0.dtype
    gen = torch.Generator(device=device).manual_seed(config.seed)
    if val_real is None:
        if min(len(real), len(fake)) < 2:
            raise ValueError("real_z0 and fake_z0 need ≥ 2 points each (train + held-out)")
        (real, hold_real), (fake, hold_fake) = (
            x.split(config.holdout_fraction, gen) for x in (real, fake)
        )
    else:
        hold_real = _Latents(val_real, val_real_y, real_z0.shape[1], "val_real")
        hold_fake = _Latents(val_fake, val_fake_y, real_z0.shape[1], "val_fake")

    def times(n: int, phi: Callable = _uniform) -> torch.Tensor:
        u = torch.rand(n, generator=gen, device=device, dtype=dtype)
        return config.eps + (sde.T - config.eps) * phi(u)

    hold = [
        x.take(torch.arange(len(x), device=device).repeat(config.eval_repeats))
        for x in (hold_real, hold_fake)
    ]
    hold_r, hold_f = (x.diffused(sde, times(len(x)), gen, dtype) for x in hold)
    wrapped, half = TimeColumn(disc, labelled), config.batch_size // 2
    opt = torch.optim.Adam(disc.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.max_steps)
    keys = ("step", "train_loss", "heldout_loss", "heldout_accuracy")
    history: dict[str, list[float]] = {key: [] for key in keys}
    best = {"loss": math.inf, "step": 0, "state": copy.deepcopy(disc.state_dict())}
    stale, running, bar = 0, [], _progress(config)
    disc.train()
    for step in range(1, config.max_steps + 1):
        t = times(half, TIME_SAMPLERS[config.time_sampler])  # the same t for both halves
        batch = [
            x.take(torch.randint(len(x), (half,), generator=gen, device=device))
            for x in (real, fake)
        ]
        logits = wrapped(torch.cat([x.diffused(sde, t, gen, dtype) for x in batch]))
        loss = 0.5 * (F.softplus(-logits[:half]).mean() + F.softplus(logits[half:]).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if config.lr_decay:
            sched.step()
        running.append(loss.detach())
        if bar is not None:
            bar.update(1)
        if step % config.eval_every and step != config.max_steps:
            continue
        h_loss, h_acc = evaluate_ratio(wrapped, hold_r, hold_f)
        train = float(torch.stack(running).mean())
        for key, value in zip(keys, (step, train, h_loss, h_acc), strict=True):
            history[key].append(float(value))
        running.clear()
        if bar is not None:
            bar.set_postfix(heldout=f"{h_loss:.4f}")
        stale = 0 if h_loss < best["loss"] else stale + 1
        if stale == 0:
            best.update(loss=h_loss, step=step, state=copy.deepcopy(disc.state_dict()))
        elif stale >= config.patience:
            break
    if bar is not None:
        bar.close()
    disc.load_state_dict(best["state"])
    disc.eval()
    loss, acc = evaluate_ratio(wrapped, hold_r, hold_f)
    edges = torch.linspace(config.eps, sde.T, config.buckets + 1, dtype=torch.float64)
    buckets = evaluate_time_discriminator(
        disc, hold_r, hold_f, edges, config.calibration_bins, labelled
    )
    return TimeDiscriminatorReport(history, best["step"], loss, acc, buckets)


def _progress(config: TimeDiscriminatorFitConfig):
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.max_steps, desc="time discriminator", leave=False)
