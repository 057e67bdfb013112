"""Discriminator-guided latent paths (DESIGN.md §3, seed 001 §4.1).

For each pair and step k = 0..T−1: propose z' = SLERP(z_k, z_b, 1/(T − k)) (or LERP); accept when
|D(z') − 0.5| < ε; otherwise correct z' ← z' − η·step(∇L(z')) at most M times or until accepted.
Objectives: "prob", L = (D − 0.5)² (the seed's); "logit", L = ℓ² (same zero set, no saturation).
Compasses: "discriminator" (the above) and "density", descent on L = −log q = −(log p − ℓ)
(seed 001 §4.2). The last step lands on z_b exactly; z_0 = z_a.

All B pairs advance together. A correction that does not lower L is not taken and that pair's step
is halved (backtracking), so no correction makes a point worse or non-finite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from latentnav._checks import check_latents
from latentnav.interpolation import lerp, slerp
from latentnav.latent_path import LatentPath

__all__ = ["NavigatorConfig", "Navigator"]


@dataclass(frozen=True)
class NavigatorConfig:
    """Steps T, band ε, step η, at most M corrections per step, and the algorithm's choices."""

    steps: int = 32
    eps: float = 0.1
    eta: float = 0.05
    max_corrections: int = 20
    step_control: Literal["plain", "normalized", "clipped"] = "normalized"
    max_step: float = 0.5
    proposal: Literal["slerp", "lerp"] = "slerp"
    objective: Literal["prob", "logit"] = "logit"
    compass: Literal["discriminator", "density"] = "discriminator"
    langevin_noise: float = 0.0
    skip_accepted: bool | None = None
    chunk_size: int = 65_536
    seed: int = 0

    def __post_init__(self) -> None:
        choices = {
            "step_control": ("plain", "normalized", "clipped"),
            "proposal": ("slerp", "lerp"),
            "objective": ("prob", "logit"),
            "compass": ("discriminator", "density"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"steps (T) must be an int ≥ 1, got {self.steps!r}")
        if not 0 < self.eps <= 0.5:
            raise ValueError(f"eps must be in (0, 0.5], got {self.eps}")
        for name in ("eta", "max_step", "chunk_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_corrections < 0 or self.langevin_noise < 0:
            raise ValueError("max_corrections and langevin_noise must be ≥ 0")


class Navigator:
    """``Navigator(aae).path(z_a, z_b)``; ``compass`` (a refitted D, logit (B, d) → (B,)) replaces
    the AAE's own discriminator when given."""

    def __init__(
        self,
        aae: nn.Module,
        config: NavigatorConfig | None = None,
        compass: nn.Module | None = None,
    ):
        self.aae = aae
        self.config = config or NavigatorConfig()
        if compass is None:  # A calibrated compass attached to the AAE wins over its own D_z.
            compass = getattr(aae, "compass", None)
        self.compass = compass if compass is not None else aae.discriminator
        self.latent_dim: int = aae.latent_dim

    # -- public API -------------------------------------------------------------------------
    def path(self, z_a: torch.Tensor, z_b: torch.Tensor, progress: bool = False) -> LatentPath:
        """z_a, z_b: (d,) or (B, d) → :class:`LatentPath` with z (B, T + 1, d)."""
        z_a, z_b = self._check_pair(z_a, z_b)
        chunk = self.config.chunk_size
        while True:
            try:
                parts = [
                    self._navigate(a, b, progress)
                    for a, b in zip(z_a.split(chunk), z_b.split(chunk), strict=True)
                ]
                break
            except torch.cuda.OutOfMemoryError:
                if chunk == 1:
                    raise
                chunk = max(1, chunk // 2)
                torch.cuda.empty_cache()
        return LatentPath.cat(parts, config=self.config)

    def between_images(self, x_a: torch.Tensor, x_b: torch.Tensor, **kw) -> LatentPath:
        """Encode x_a, x_b: (B, *image_shape) first, then :meth:`path`."""
        with torch.no_grad():
            return self.path(self.aae.encode(x_a), self.aae.encode(x_b), **kw)

    # -- the algorithm ----------------------------------------------------------------------
    def _objective(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L (B,), ℓ (B,)) at z: (B, d)."""
        logit = self.compass(z)
        if self.config.compass == "density":
            return logit - self.aae.prior.log_prob(z), logit
        if self.config.objective == "prob":
            return (torch.sigmoid(logit) - 0.5).square(), logit
        return logit.square(), logit

    def _evaluate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L, ℓ and ∇_z L at z, with no parameter gradients."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            loss, logit = self._objective(z)
            if loss.requires_grad:
                (grad,) = torch.autograd.grad(loss.sum(), z, allow_unused=True)
            else:  # A compass that does not depend on z.
                grad = None
        grad = torch.zeros_like(z) if grad is None else grad
        return loss.detach(), logit.detach(), grad

    def _step(
        self, grad: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        c = self.config
        norm = grad.norm(dim=-1, keepdim=True)
        if c.step_control == "normalized":
            direction = grad / norm.clamp_min(1e-12)
        elif c.step_control == "clipped":
            direction = grad * (c.max_step / (c.eta * norm).clamp_min(c.max_step)).clamp(max=1)
        else:
            direction = grad
        step = -c.eta * scale[:, None] * direction
        if noise is not None:
            step = step + (2 * c.eta * scale[:, None]).sqrt() * c.langevin_noise * noise
        return step

    def _correct(self, z, loss, logit, grad, scale, active, noise):
        """One correction for the rows in ``active`` (B,) bool; returns the updated state."""
        candidate = z + self._step(grad, scale, noise)
        new_loss, new_logit, new_grad = self._evaluate(candidate)
        finite = torch.isfinite(candidate).all(-1) & torch.isfinite(new_loss)
        finite &= torch.isfinite(new_grad).all(-1)
        better = active & finite & (new_loss < loss)
        keep = better[:, None]
        z = torch.where(keep, candidate, z)
        grad = torch.where(keep, new_grad, grad)
        loss, logit = torch.where(better, new_loss, loss), torch.where(better, new_logit, logit)
        scale = torch.where(active & ~better, scale * 0.5, scale)
        return z, loss, logit, grad, scale

    def _in_band(self, logit: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(logit) - 0.5).abs() < self.config.eps

    def _navigate(self, z_a: torch.Tensor, z_b: torch.Tensor, progress: bool) -> LatentPath:
        c, device = self.config, z_a.device
        skip = c.skip_accepted if c.skip_accepted is not None else device.type == "cpu"
        propose: Callable = slerp if c.proposal == "slerp" else lerp
        generator = torch.Generator(device).manual_seed(c.seed)
        was_training = self.compass.training
        self.compass.eval()
        params = [p for p in self.compass.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            z, record = z_a, _Record(z_a, c.steps)
            with torch.no_grad():
                record.add(0, z_a, self.compass(z_a), torch.zeros_like(z_a[:, 0]))
            for k in tqdm(range(c.steps), disable=not progress, desc="navigating", leave=False):
                if k == c.steps - 1:  # The last step lands on z_b exactly.
                    with torch.no_grad():
                        record.add(k + 1, z_b, self.compass(z_b), torch.zeros_like(z_b[:, 0]))
                    break
                z = propose(z, z_b, 1.0 / (c.steps - k))
                z, logit, count = self._correct_until_accepted(z, generator, skip)
                record.add(k + 1, z, logit, count)
        finally:
            for p in params:
                p.requires_grad_(True)
            self.compass.train(was_training)
        return record.finish(self._in_band, c)

    def _correct_until_accepted(self, z, generator, skip):
        """Up to M corrections; returns z, ℓ(z) and the number of corrections per row."""
        c = self.config
        loss, logit, grad = self._evaluate(z)
        active = ~self._in_band(logit)
        count = torch.zeros_like(loss)
        scale = torch.ones_like(loss)
        for _ in range(c.max_corrections):
            noise = None
            if c.langevin_noise > 0:
                noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            if skip:  # CPU: spend the work only on rows still correcting (one host sync per step).
                idx = active.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                state = self._correct(
                    z[idx],
                    loss[idx],
                    logit[idx],
                    grad[idx],
                    scale[idx],
                    active[idx],
                    None if noise is None else noise[idx],
                )
                for full, part in zip((z, loss, logit, grad, scale), state, strict=True):
                    full[idx] = part
            else:  # GPU: every row, masked; no host synchronisation.
                z, loss, logit, grad, scale = self._correct(
                    z, loss, logit, grad, scale, active, noise
                )
            count = count + active.to(count.dtype)
            active = active & ~self._in_band(logit)
        return z, logit, count

    def _check_pair(self, z_a, z_b) -> tuple[torch.Tensor, torch.Tensor]:
        z_a, z_b = (_as_batch(z_a), _as_batch(z_b))
        check_latents(z_a, self.latent_dim, "z_a")
        check_latents(z_b, self.latent_dim, "z_b")
        if z_a.shape != z_b.shape:
            raise ValueError(
                f"z_a and z_b must have the same shape, got {tuple(z_a.shape)} and "
                f"{tuple(z_b.shape)}"
            )
        if z_a.dtype != z_b.dtype or z_a.device != z_b.device:
            raise ValueError(
                f"z_a and z_b must share dtype and device, got {z_a.dtype}/{z_a.device}"
                f" and {z_b.dtype}/{z_b.device}"
            )
        param = next(self.compass.parameters(), None)
        if param is not None and (param.device != z_a.device or param.dtype != z_a.dtype):
            raise ValueError(
                f"z_a has dtype {z_a.dtype} on {z_a.device} but the compass has "
                f"{param.dtype} on {param.device}; move one with .to()"
            )
        return z_a.detach(), z_b.detach()


def _as_batch(z: object) -> object:
    """(d,) → (1, d); anything else is left for :func:`check_latents` to judge."""
    return z[None] if isinstance(z, torch.Tensor) and z.ndim == 1 else z


class _Record:
    """Preallocated (B, T + 1, …) buffers filled step by step."""

    def __init__(self, z: torch.Tensor, steps: int):
        b, d = z.shape
        self.z = z.new_empty(b, steps + 1, d)
        self.logit = z.new_empty(b, steps + 1)
        self.count = z.new_zeros(b, steps + 1)

    def add(self, k: int, z: torch.Tensor, logit: torch.Tensor, count: torch.Tensor) -> None:
        self.z[:, k], self.logit[:, k], self.count[:, k] = z, logit, count

    def finish(self, in_band: Callable, config: NavigatorConfig) -> LatentPath:
        return LatentPath(
            z=self.z,
            d_score=torch.sigmoid(self.logit),
            corrections=self.count.to(torch.int64),
            accepted=in_band(self.logit),
            config=config,
        )
