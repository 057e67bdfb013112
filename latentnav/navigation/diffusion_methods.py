"""The navigator's diffusion compasses (DESIGN.md §3, issue 11 §4): the stepwise SLERP proposal of
the seed's loop, corrected by the latent diffusion model instead of the AAE's discriminator, so
that the density estimate is the diffusion model's.

    "score"   z' ← z' + η s(t0)² s_θ(z', t0), ``corrections`` times (a Tweedie-sized step along
              the score at a small t0: each step moves z' towards the model's denoised estimate)
    "sde"     z' diffused to t0 by the forward SDE, z_t0 = m(t0) z' + s(t0) ξ, then run back to
              ``eps`` by a sampler of :data:`latentnav.sampling.SAMPLERS` over ``substeps``
              steps (SDEdit's projection onto the model's manifold); optionally guided by a
              time-dependent discriminator (``discriminator``, ``weight``: DESIGN.md §5)

Both walk z_{k+1} = correct(SLERP(z_k, z_b, 1/(T − k))) for k < T − 1 and land on z_b exactly.
Records: ``"correction"`` (B, T + 1), the distance each point moved from its proposal.
Shapes: z_a, z_b (B, d); paths (B, T + 1, d).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from latentnav._chunks import IndexNoise
from latentnav.interpolation import _slerp as slerp
from latentnav.navigation.methods import Method, check_steps, register_method
from latentnav.navigation.path import LatentPath

__all__ = ["ScoreSteps", "SDEProjection"]


class _DiffusionStepwise(Method):
    """The stepwise walk with a diffusion-model correction ``_correct(z, k) -> z``."""

    def __init__(self, aae: nn.Module, diffusion: nn.Module | None, steps: int, t0: float):
        super().__init__(aae)
        if diffusion is None:
            raise ValueError(
                f"the {self.name!r} method needs the latent diffusion model: diffusion="
            )
        if diffusion.latent_dim != self.latent_dim and self.latent_dim is not None:
            raise ValueError(
                f"diffusion has latent dim {diffusion.latent_dim}, the AAE {self.latent_dim}"
            )
        if not 0 < t0 <= diffusion.sde.T:
            raise ValueError(f"t0 must be in (0, {diffusion.sde.T}], got {t0}")
        self.diffusion, self.steps, self.t0 = diffusion, check_steps(steps), float(t0)

    @property
    def model(self) -> nn.Module:
        return self.diffusion

    @torch.no_grad()
    def _path(self, z_a, z_b, callback):
        b, d = z_a.shape
        z_all = z_a.new_empty(b, self.steps + 1, d)
        moved = z_a.new_zeros(b, self.steps + 1)
        z_all[:, 0], z = z_a, z_a
        self._start(z_a)
        for k in range(self.steps):
            if k == self.steps - 1:
                z = z_b
            else:
                proposal = slerp(z, z_b, 1.0 / (self.steps - k))
                z = self._correct(proposal, k)
                moved[:, k + 1] = (z - proposal).norm(dim=-1)
            z_all[:, k + 1] = z
            if callback is not None:
                callback({"k": k, "z": z, "correction": moved[:, k + 1]})
        return LatentPath(z_all, {"correction": moved}, self.name, self.config())

    def _start(self, z_a: torch.Tensor) -> None:
        """Per-path set-up (e.g. a generator on z_a's device)."""

    def _correct(self, z: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError


@register_method("score")
class ScoreSteps(_DiffusionStepwise):
    """``ScoreSteps(aae, diffusion, steps=32, t0=0.005, corrections=30, step_size=1.0,
    ema=True)``: deterministic, so a batch equals its single calls. Defaults: the dev-pair choice
    of RESULTS §6.11 (larger t0 or more corrections clean more frames but jump more)."""

    def __init__(self, aae, diffusion=None, steps: int = 32, t0: float = 0.005,
                 corrections: int = 30, step_size: float = 1.0, ema: bool = True):  # fmt: skip
        super().__init__(aae, diffusion, steps, t0)
        if not (isinstance(corrections, int) and corrections >= 0):
            raise ValueError(f"corrections must be an int ≥ 0, got {corrections!r}")
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        self.corrections, self.step_size, self.ema = corrections, float(step_size), ema

    def config(self) -> dict[str, Any]:
        return {"steps": self.steps, "t0": self.t0, "corrections": self.corrections,
                "step_size": self.step_size, "ema": self.ema}  # fmt: skip

    def _correct(self, z, k):
        score = self.diffusion.score_fn(self.ema)
        t = torch.full((len(z),), self.t0, device=z.device, dtype=z.dtype)
        s2 = self.diffusion.sde.marginal(t)[1].square()[:, None]
        for _ in range(self.corrections):
            z = z + self.step_size * s2 * score(z, t)
        return z


@register_method("sde")
class SDEProjection(_DiffusionStepwise):
    """``SDEProjection(aae, diffusion, steps=32, t0=0.1, substeps=20, sampler="em", eps=1e-3,
    discriminator=None, weight=1.0, seed=0, ema=True)``. The forward noise and the sampler's
    noise of pair i are drawn from ``IndexNoise(seed)`` at row i of the call: deterministic for a
    seed and independent of the chunk size (the first k pairs of a batch equal a batch of those
    k), but a batch does not equal its single calls."""

    def __init__(self, aae, diffusion=None, steps: int = 32, t0: float = 0.1, substeps: int = 20,
                 sampler: str = "em", eps: float = 1e-3, discriminator: nn.Module | None = None,
                 weight: float = 1.0, seed: int = 0, ema: bool = True):  # fmt: skip
        from latentnav.sampling import SAMPLERS

        super().__init__(aae, diffusion, steps, t0)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {sampler!r}")
        if not 0 < eps < t0:
            raise ValueError(f"eps must be in (0, t0 = {t0}), got {eps}")
        self.times = torch.linspace(t0, eps, check_steps(substeps) + 1)  # evenly, t0 → eps
        self.substeps, self.sampler, self.eps, self.seed = substeps, sampler, eps, seed
        self.discriminator, self.weight, self.ema = discriminator, float(weight), ema
        self._generator: IndexNoise | None = None

    def config(self) -> dict[str, Any]:
        return {"steps": self.steps, "t0": self.t0, "substeps": self.substeps,
                "sampler": self.sampler, "eps": self.eps, "guided": self.discriminator is not None,
                "weight": self.weight, "seed": self.seed, "ema": self.ema}  # fmt: skip

    def _rows(self, z_a, z_b, callback, first):
        self._generator = IndexNoise(self.seed, first)  # noise per pair index: chunk-free
        return self._path(z_a, z_b, callback)

    def _correct(self, z, k):
        from latentnav.guidance import guided_score
        from latentnav.sampling import SAMPLERS

        sde = self.diffusion.sde
        score = self.diffusion.score_fn(self.ema)
        if self.discriminator is not None:
            score = guided_score(score, self.discriminator, self.weight, T=sde.T)
        t = torch.full((len(z),), self.t0, device=z.device, dtype=z.dtype)
        noise = self._generator.randn(z.shape, z.dtype, z.device)
        z_t0 = sde.perturb(z, t, noise)[0]
        ts = self.times.to(device=z.device, dtype=z.dtype)
        return SAMPLERS[self.sampler](score, sde, z_t0, ts, generator=self._generator).z
