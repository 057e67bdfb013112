"""The seed's stepwise navigator (DESIGN.md §3, seed 001 §4.1), taking a compass object.

For each pair and step k = 0..T−1: propose z' = SLERP(z_k, z_b, 1/(T − k)) (or LERP); accept when
|σ(ℓ(z')) − 0.5| < ε; otherwise correct z' ← z' − η·step(∇L(z')) at most M times or until
accepted, (L, ℓ) = compass(z') (:mod:`latentnav.navigation.compasses`). The last step lands on z_b
exactly; z_0 = z_a.

All B pairs of a chunk advance together. A correction that does not lower L is not taken and that
pair's step is halved (backtracking), so no correction makes a point worse or non-finite. The
Langevin noise ξ of pair i at step k, correction m is ``IndexNoise(seed).normal((k, m), i)``:
a function of the pair's index in the call only, so the first n paths of a batch are those of
the batch of its first n pairs, and any ``chunk_size`` gives the same paths.
Records: ``d_score`` σ(ℓ), ``corrections`` (int64), ``accepted`` (bool), all (B, T + 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from latentnav._chunks import NAVIGATION_CHUNK, IndexNoise, check_chunk_size
from latentnav._modules import frozen
from latentnav.interpolation import _lerp as lerp
from latentnav.interpolation import _slerp as slerp
from latentnav.navigation.compasses import DiscriminatorCompass, as_compass
from latentnav.navigation.methods import Method, register_method
from latentnav.navigation.path import LatentPath

__all__ = ["StepwiseConfig", "Stepwise"]

_PROPOSALS = {"slerp": slerp, "lerp": lerp}


@dataclass(frozen=True)
class StepwiseConfig:
    """Steps T, band ε, step η, at most M corrections per step, and the loop's choices."""

    steps: int = 32
    eps: float = 0.1
    eta: float = 0.05
    max_corrections: int = 20
    step_control: Literal["plain", "normalized", "clipped"] = "normalized"
    max_step: float = 0.5
    proposal: Literal["slerp", "lerp"] = "slerp"
    langevin_noise: float = 0.0
    skip_accepted: bool | None = None
    chunk_size: int = NAVIGATION_CHUNK
    seed: int = 0

    def __post_init__(self) -> None:
        choices = {
            "step_control": ("plain", "normalized", "clipped"),
            "proposal": ("slerp", "lerp"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"steps (T) must be an int ≥ 1, got {self.steps!r}")
        if not 0 < self.eps <= 0.5:
            raise ValueError(f"eps must be in (0, 0.5], got {self.eps}")
        check_chunk_size(self.chunk_size, "chunk_size")
        for name in ("eta", "max_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_corrections < 0 or self.langevin_noise < 0:
            raise ValueError("max_corrections and langevin_noise must be ≥ 0")


@register_method("stepwise")
class Stepwise(Method):
    """``Stepwise(aae, compass, config, **fields)``; ``compass`` defaults to the AAE's attached
    calibrated compass (``aae.compass``) or else its own D_z, as ``DiscriminatorCompass``; a bare
    logit module is wrapped the same way. ``fields`` override those of ``config``.
    ``callback`` sees ``{"k", "z", "logit", "corrections"}`` after every step k (per chunk)."""

    def __init__(
        self,
        aae: nn.Module,
        compass: nn.Module | None = None,
        config: StepwiseConfig | None = None,
        **fields: Any,
    ):
        super().__init__(aae)
        self.settings = replace(config or StepwiseConfig(), **fields)
        if compass is None:
            logit = getattr(aae, "compass", None)
            compass = DiscriminatorCompass(logit if logit is not None else aae.discriminator)
        self.compass = as_compass(compass)
        self.chunk_size = self.settings.chunk_size

    @property
    def model(self) -> nn.Module:
        return self.compass

    def config(self) -> dict[str, Any]:
        compass = self.compass.config() if hasattr(self.compass, "config") else {}
        return {**asdict(self.settings), "compass": compass}

    def _path(self, z_a, z_b, callback):
        return self._navigate(z_a, z_b, callback, 0)

    def _rows(self, z_a, z_b, callback, first):
        return self._navigate(z_a, z_b, callback, first)

    # -- the algorithm ----------------------------------------------------------------------
    def _evaluate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L, ℓ and ∇_z L at z: (B, d), with no parameter gradients."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            loss, logit = self.compass(z)
            if loss.requires_grad:
                (grad,) = torch.autograd.grad(loss.sum(), z, allow_unused=True)
            else:  # A compass that does not depend on z.
                grad = None
        grad = torch.zeros_like(z) if grad is None else grad
        return loss.detach(), logit.detach(), grad

    def _step(self, grad, scale, noise):
        c = self.settings
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
        return (torch.sigmoid(logit) - 0.5).abs() < self.settings.eps

    def _navigate(self, z_a, z_b, callback, first: int) -> LatentPath:
        """The pairs first..first + b − 1 of the call: z_a, z_b (b, d) → LatentPath."""
        c, device = self.settings, z_a.device
        skip = c.skip_accepted if c.skip_accepted is not None else device.type == "cpu"
        propose = _PROPOSALS[c.proposal]
        noise = IndexNoise(c.seed, first) if c.langevin_noise > 0 else None
        b, d = z_a.shape
        z_all, logit_all = z_a.new_empty(b, c.steps + 1, d), z_a.new_empty(b, c.steps + 1)
        count_all = z_a.new_zeros(b, c.steps + 1)
        with frozen(self.compass):
            z = z_a
            with torch.no_grad():
                z_all[:, 0], logit_all[:, 0] = z_a, self.compass(z_a)[1]
            for k in range(c.steps):
                if k == c.steps - 1:  # The last step lands on z_b exactly.
                    z, count = z_b, torch.zeros_like(z_b[:, 0])
                    with torch.no_grad():
                        logit = self.compass(z_b)[1]
                else:
                    z = propose(z, z_b, 1.0 / (c.steps - k))
                    z, logit, count = self._correct_until_accepted(z, k, noise, skip)
                z_all[:, k + 1], logit_all[:, k + 1], count_all[:, k + 1] = z, logit, count
                if callback is not None:
                    callback({"k": k, "z": z, "logit": logit, "corrections": count})
        records = {
            "d_score": torch.sigmoid(logit_all),
            "corrections": count_all.to(torch.int64),
            "accepted": self._in_band(logit_all),
        }
        return LatentPath(z_all, records, self.name, self.config())

    def _correct_until_accepted(self, z, k: int, noise: IndexNoise | None, skip: bool):
        """Up to M corrections at step k; returns z, ℓ(z) and the number of corrections per
        row. ``noise``: the chunk's Langevin noise (None: no noise)."""
        c = self.settings
        loss, logit, grad = self._evaluate(z)
        active = ~self._in_band(logit)
        count = torch.zeros_like(loss)
        scale = torch.ones_like(loss)
        for m in range(c.max_corrections):
            if skip:  # CPU: spend the work only on rows still correcting (one host sync per step).
                idx = active.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                state = (z, loss, logit, grad, scale, active)
                part = [s[idx] for s in state] + [self._noise(noise, (k, m), idx, z)]
                for full, new in zip(state[:5], self._correct(*part), strict=True):
                    full[idx] = new
            else:  # GPU: every row, masked; no host synchronisation.
                rows = self._noise(noise, (k, m), len(z), z)
                z, loss, logit, grad, scale = self._correct(
                    z, loss, logit, grad, scale, active, rows
                )
            count = count + active.to(count.dtype)
            active = active & ~self._in_band(logit)
        return z, logit, count

    @staticmethod
    def _noise(noise: IndexNoise | None, stream, rows, z: torch.Tensor) -> torch.Tensor | None:
        """ξ (n, d) for ``rows`` (indices or a count) of the chunk at ``stream`` = (k, m)."""
        if noise is None:
            return None
        return noise.normal(stream, rows, z.shape[1], z.dtype, z.device)
