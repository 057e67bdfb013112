"""A discriminator as a density-ratio estimator (DESIGN.md §2).

Trained with BCE on real z ~ p (label 1) against fake z ~ q (label 0), in balanced batches, the
optimal discriminator is D* = p/(p+q), so its logit estimates ℓ*(z) = log p(z) − log q(z) with no
class-prior offset. Early stopping on held-out BCE keeps the best weights (DESIGN.md §3: refit on
the frozen encoder "to convergence, early-stopped on held-out loss").
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from latentnav._checks import check_latents, check_positive
from latentnav._modules import evaluating
from latentnav.networks import LatentDiscriminator
from latentnav.priors import Prior

__all__ = [
    "RatioFitConfig",
    "RatioFitResult",
    "fit_density_ratio",
    "evaluate_ratio",
    "calibration",
    "density_ratio_fidelity",
]

_EVAL_BLOCK = 8192


@dataclass
class RatioFitConfig:
    """Adam + balanced-batch BCE; held-out BCE evaluated every ``eval_every`` steps, training stops
    after ``patience`` evaluations without improvement. ``gradient_penalty`` weights E‖∇_z ℓ‖² at
    the batch's real and fake points."""

    max_steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    holdout_fraction: float = 0.2
    eval_every: int = 50
    patience: int = 10
    gradient_penalty: float = 0.0
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "eval_every", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be ≥ 2 (half real, half fake), got {self.batch_size}"
            )
        check_positive(self.lr, "lr")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.weight_decay < 0 or self.gradient_penalty < 0:
            raise ValueError("weight_decay and gradient_penalty must be ≥ 0")


@dataclass
class RatioFitResult:
    """``history``: per evaluation, step, train_loss, heldout_loss, heldout_accuracy."""

    history: dict[str, list[float]] = field(default_factory=dict)
    best_step: int = 0
    heldout_loss: float = math.nan
    heldout_accuracy: float = math.nan


def _split(n: int, fraction: float, gen: torch.Generator, device: torch.device):
    n_hold = min(n - 1, max(1, round(fraction * n)))
    perm = torch.randperm(n, generator=gen, device=device)
    return perm[n_hold:], perm[:n_hold]


@torch.no_grad()
def _logits(disc: nn.Module, z: torch.Tensor) -> torch.Tensor:
    return torch.cat([disc(zb) for zb in z.split(_EVAL_BLOCK)])


@torch.no_grad()
def evaluate_ratio(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
    """Balanced BCE and balanced accuracy of ``disc`` on ``real: (N, d)`` vs ``fake: (M, d)``."""
    with evaluating(disc):
        lr_, lf = _logits(disc, real), _logits(disc, fake)
    loss = 0.5 * (F.softplus(-lr_).mean() + F.softplus(lf).mean())
    acc = 0.5 * ((lr_ > 0).float().mean() + (lf <= 0).float().mean())
    return float(loss), float(acc)


def fit_density_ratio(
    discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, config: RatioFitConfig
) -> RatioFitResult:
    """Train ``discriminator: (B, d) → logits (B,)`` in place so that ℓ ≈ log p − log q.

    ``real: (N, d)`` ~ p, ``fake: (M, d)`` ~ q, N ≠ M allowed. Runs on ``real``'s device; the best
    held-out weights are restored and the module is left in eval mode.
    """
    check_latents(real, None, "real")
    check_latents(fake, real.shape[1], "fake")
    if fake.device != real.device:
        raise ValueError(f"real and fake must share a device, got {real.device} and {fake.device}")
    if min(len(real), len(fake)) < 2:
        raise ValueError("real and fake need ≥ 2 points each (train + held-out)")
    device = real.device
    real, fake = real.detach(), fake.detach()
    gen = torch.Generator(device=device).manual_seed(config.seed)
    r_train, r_hold = (real[i] for i in _split(len(real), config.holdout_fraction, gen, device))
    f_train, f_hold = (fake[i] for i in _split(len(fake), config.holdout_fraction, gen, device))
    half = config.batch_size // 2
    opt = torch.optim.Adam(
        discriminator.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    keys = ("step", "train_loss", "heldout_loss", "heldout_accuracy")
    history: dict[str, list[float]] = {key: [] for key in keys}
    best_loss, best_step, best_state, stale = math.inf, 0, None, 0
    running: list[torch.Tensor] = []

    def evaluate(step: int) -> bool:
        nonlocal best_loss, best_step, best_state, stale
        loss, acc = evaluate_ratio(discriminator, r_hold, f_hold)
        train = float(torch.stack(running).mean()) if running else math.nan
        running.clear()
        for key, value in zip(keys, (step, train, loss, acc), strict=True):
            history[key].append(float(value))
        if loss < best_loss:
            best_loss, best_step, stale = loss, step, 0
            best_state = copy.deepcopy(discriminator.state_dict())
        else:
            stale += 1
        return stale >= config.patience

    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.max_steps, desc="density ratio", leave=False)
    discriminator.train()
    stopped = evaluate(0)
    step = 0
    while not stopped and step < config.max_steps:
        step += 1
        ir = torch.randint(len(r_train), (half,), generator=gen, device=device)
        jf = torch.randint(len(f_train), (half,), generator=gen, device=device)
        z = torch.cat([r_train[ir], f_train[jf]])
        if config.gradient_penalty > 0:
            z.requires_grad_(True)
        logits = discriminator(z)
        loss = 0.5 * (F.softplus(-logits[:half]).mean() + F.softplus(logits[half:]).mean())
        if config.gradient_penalty > 0:
            (grad,) = torch.autograd.grad(logits.sum(), z, create_graph=True)
            loss = loss + config.gradient_penalty * grad.pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.detach())
        if bar is not None:
            bar.update(1)
        if step % config.eval_every == 0 or step == config.max_steps:
            stopped = evaluate(step)
            if bar is not None:
                bar.set_postfix(heldout=f"{history['heldout_loss'][-1]:.4f}")
    if bar is not None:
        bar.close()
    if best_state is not None:
        discriminator.load_state_dict(best_state)
    discriminator.eval()
    loss, acc = evaluate_ratio(discriminator, r_hold, f_hold)
    return RatioFitResult(history, best_step, loss, acc)


@torch.no_grad()
def calibration(
    discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, bins: int = 10
) -> dict[str, Any]:
    """Reliability-diagram data for D = σ(ℓ): per equal-width bin of D, the mean D and the balanced
    fraction of real points (real and fake each weigh ½ in total), plus the expected calibration
    error ECE = Σ_b w_b |mean D_b − fraction real_b|. Empty bins hold ``None``."""
    check_latents(real, None, "real")
    check_latents(fake, real.shape[1], "fake")
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    prob = torch.sigmoid(torch.cat([_logits(discriminator, real), _logits(discriminator, fake)]))
    prob = prob.double()
    is_real = torch.cat([real.new_ones(len(real)), real.new_zeros(len(fake))]).double()
    weight = torch.cat([is_real[: len(real)] / len(real), (1 - is_real[len(real) :]) / len(fake)])
    weight = 0.5 * weight
    idx = (prob * bins).long().clamp(0, bins - 1)
    w_bin = torch.zeros(bins, dtype=torch.float64, device=prob.device)
    w_bin.index_add_(0, idx, weight)
    p_bin = torch.zeros_like(w_bin).index_add_(0, idx, weight * prob)
    r_bin = torch.zeros_like(w_bin).index_add_(0, idx, weight * is_real)
    count = torch.bincount(idx, minlength=bins)
    safe = w_bin.clamp_min(1e-300)
    mean_p, frac = p_bin / safe, r_bin / safe
    ece = float((w_bin * (mean_p - frac).abs()).sum())
    brier = float((weight * (prob - is_real) ** 2).sum())

    def listed(x: torch.Tensor) -> list[float | None]:
        return [
            float(v) if c > 0 else None for v, c in zip(x.tolist(), count.tolist(), strict=True)
        ]

    return {
        "bin_edges": torch.linspace(0, 1, bins + 1).tolist(),
        "mean_predicted": listed(mean_p),
        "fraction_real": listed(frac),
        "count": count.tolist(),
        "weight": w_bin.tolist(),
        "ece": ece,
        "brier": brier,
    }


def density_ratio_fidelity(
    p: Prior,
    q: Prior,
    n: int,
    config: RatioFitConfig,
    hidden: Sequence[int] = (128, 128),
    quantile: float = 0.05,
) -> dict[str, float]:
    """Fit a :class:`LatentDiscriminator` on ``n`` samples of p (real) and of q (fake), then
    measure Pearson r between ℓ(z) and the true log p(z) − log q(z) on fresh points of ½(p + q)
    where both log p and log q exceed their own ``quantile`` over samples of p (resp. q)."""
    if p.dim != q.dim:
        raise ValueError(f"p and q must share a dim, got {p.dim} and {q.dim}")
    gen = torch.Generator(device=p.device).manual_seed(config.seed)
    real, fake = p.sample(n, gen), q.sample(n, gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        disc = LatentDiscriminator(p.dim, hidden).to(real)
    start = time.perf_counter()
    fit = fit_density_ratio(disc, real, fake, config)
    seconds = time.perf_counter() - start
    thr_p = torch.quantile(p.log_prob(p.sample(n, gen)).double(), quantile)
    thr_q = torch.quantile(q.log_prob(q.sample(n, gen)).double(), quantile)
    z = torch.cat([p.sample(n, gen), q.sample(n, gen)])
    lp, lq = p.log_prob(z).double(), q.log_prob(z).double()
    keep = (lp > thr_p) & (lq > thr_q)
    truth, est = (lp - lq)[keep], _logits(disc, z).double()[keep]
    pearson = float(torch.corrcoef(torch.stack([truth, est]))[0, 1]) if keep.sum() > 2 else math.nan
    return {
        "pearson": pearson,
        "rmse": float((est - truth).pow(2).mean().sqrt()),
        "truth_spread": float(torch.quantile(truth, 0.95) - torch.quantile(truth, 0.05)),
        "n_points": int(keep.sum()),
        "heldout_accuracy": fit.heldout_accuracy,
        "heldout_loss": fit.heldout_loss,
        "best_step": fit.best_step,
        "fit_seconds": seconds,
    }
