"""Latent diffusion model: a score network over AAE latents with its SDE, loss, EMA weights,
samplers and likelihood (DESIGN.md §4), as a plain ``nn.Module``. Its Lightning training lives
next to the AAE's (:class:`latentnav.training.DiffusionTraining`, :func:`fit_diffusion`); joint
training with the AAE in :mod:`latentnav.joint`.

Shapes: latents ``z: (B, d)``; labels ``y: (B,)`` when the score network is class-conditional.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from latentnav._checks import check_latents
from latentnav._modules import evaluating
from latentnav.checkpoint import build_checked, save_tensors
from latentnav.likelihood import LikelihoodResult, log_likelihood
from latentnav.losses import LOSSES, score_matching_loss
from latentnav.sampling import SampleResult, ScoreFn, probability_flow, sample, sample_chunked
from latentnav.score_net import ScoreNet, ScoreNetConfig
from latentnav.sde import SDEConfig, make_sde

__all__ = ["DiffusionConfig", "LatentDiffusion", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "latentnav.diffusion/1"


@dataclass
class DiffusionConfig:
    """Model (SDE, score network) and optimisation (loss, Adam, EMA) of the latent diffusion."""

    sde: SDEConfig = field(default_factory=SDEConfig)
    net: ScoreNetConfig = field(default_factory=ScoreNetConfig)
    loss: str = "dsm"
    weighting: str = "sigma2"
    eps: float = 1e-5
    noise_levels: int = 0  # > 0: train on that many discrete levels (NCSN); 0: t ~ U(eps, T)
    lr: float = 1e-3
    lr_final_fraction: float = 0.05
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    batch_size: int = 256
    epochs: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.sde, dict):
            self.sde = SDEConfig(**self.sde)
        if isinstance(self.net, dict):
            self.net = ScoreNetConfig(**self.net)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.weighting not in ("sigma2", "likelihood"):
            raise ValueError(f"weighting must be 'sigma2' or 'likelihood', got {self.weighting!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
        if not (isinstance(self.noise_levels, int) and self.noise_levels >= 0):
            raise ValueError(f"noise_levels must be an int ≥ 0, got {self.noise_levels!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.lr_final_fraction <= 1:
            raise ValueError(f"lr_final_fraction must be in (0, 1], got {self.lr_final_fraction}")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        if not self.grad_clip >= 0:
            raise ValueError(f"grad_clip must be ≥ 0 (0: no clipping), got {self.grad_clip}")


class LatentDiffusion(nn.Module):
    """s_θ(z, t) for q(z); ``sample`` and ``log_likelihood`` use the EMA weights by default."""

    def __init__(self, config: DiffusionConfig | None = None):
        super().__init__()
        self.config = config or DiffusionConfig()
        self.sde = make_sde(self.config.sde)
        self.net = ScoreNet(self.config.net, self.sde)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.int64))

    @property
    def latent_dim(self) -> int:
        return self.config.net.latent_dim

    @property
    def device(self) -> torch.device:
        return self.ema_updates.device

    def score_fn(self, ema: bool = True, y: torch.Tensor | None = None) -> ScoreFn:
        """The callable ``(z, t) → s(z, t)`` that samplers and the likelihood take."""
        net = self.ema if ema else self.net
        return lambda z, t: net(z, t, y)

    def loss(self, z0: torch.Tensor, y: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """The configured score-matching loss on clean latents ``z0: (B, d)`` (DESIGN.md §4)."""
        c = self.config
        kwargs = {"weighting": c.weighting, "eps": c.eps, "generator": generator}
        if c.noise_levels:
            kwargs["levels"] = self.sde.noise_levels(c.noise_levels).to(z0.device)
        return score_matching_loss(c.loss, self.score_fn(False, y), self.sde, z0, **kwargs)

    @torch.no_grad()
    def update_ema(self) -> None:
        """EMA with warm-up: decay min(β, (1 + k) / (10 + k)) after k updates (no host sync)."""
        k = self.ema_updates.to(torch.float32)
        decay = torch.clamp((1 + k) / (10 + k), max=self.config.ema_decay)
        for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            e.lerp_(p, 1 - decay)
        self.ema_updates += 1

    # --- use -----------------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        sampler: str = "ode",
        seed: int = 0,
        ema: bool = True,
        y: torch.Tensor | None = None,
        score_fn: ScoreFn | None = None,
        condition: object = None,
        guidance: nn.Module | None = None,
        scale: float = 1.0,
        conditional=None,
        chunk_size: int | None = None,
        **kwargs,
    ) -> SampleResult:
        """n latents from the model (``sampler`` and its options as in :func:`sampling.sample`:
        ``steps``, ``callback``, ``progress``, …). ``score_fn`` replaces the model's own score
        (default: its EMA network, class ``y``), e.g. a guided score wrapping
        ``self.score_fn()``. The default, the adaptive probability-flow ODE, gave the best FID
        at the fewest NFE on MNIST d = 8 and 16 (benchmarks/RESULTS.md §7). ``condition`` (a
        label, labels (n,), …) samples p(z | condition) (DESIGN.md §6) through
        :mod:`latentnav.conditional.sampling`: guided by the noisy classifier ``guidance`` at
        α = ``scale``, or by a ``conditional`` model (e.g. an ``EstimatorModel``).
        ``chunk_size``: stream the n samples in chunks of that many, with the prior draw and the
        noise per sample index (:func:`sampling.sample_chunked`; memory bounded by the chunk,
        other numbers than the unchunked default for the same seed)."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n must be an int ≥ 1, got {n!r}")
        if condition is None and (guidance is not None or conditional is not None):
            raise ValueError("guidance= and conditional= need condition= (a label or labels (n,))")
        if condition is not None and y is not None:
            raise ValueError("pass the class as condition= or y=, not both")
        if condition is not None and chunk_size is not None:
            raise ValueError("chunk_size= streams unconditional sampling; pass condition= alone")
        with evaluating(self):
            g = torch.Generator(self.device).manual_seed(seed)
            fn = score_fn if score_fn is not None else self.score_fn(ema, y)
            if condition is not None:
                from latentnav.conditional.sampling import for_diffusion

                model = for_diffusion(self, fn, guidance, scale, conditional)
                return model.sample(n, condition, sampler, generator=g, **kwargs)
            shape = (n, self.latent_dim)
            if chunk_size is not None:
                return sample_chunked(
                    fn, self.sde, shape, sampler, seed=seed, chunk_size=chunk_size,
                    device=self.device, **kwargs,
                )  # fmt: skip
            return sample(fn, self.sde, shape, sampler, generator=g, device=self.device, **kwargs)

    @torch.no_grad()
    def interpolate(
        self,
        z_a: torch.Tensor,
        z_b: torch.Tensor,
        steps: int = 32,
        t: float | None = None,
        method: str = "slerp",
        ema: bool = True,
        eps: float = 1e-3,
        **ode,
    ) -> torch.Tensor:
        """Probability-flow-ODE interpolation (DESIGN.md §3, baselines; seed 000 §5.3): carry
        z_a, z_b (B, d) from ``eps`` to time ``t`` (default T, the prior) with the ODE,
        interpolate there (``method`` "slerp" or "lerp"), carry every point back to ``eps``.
        → (B, steps + 1, d), endpoints exactly z_a, z_b. ``ode`` goes to
        :func:`sampling.probability_flow` (rtol, atol, method)."""
        from latentnav.interpolation import interpolate

        check_latents(z_a, self.latent_dim, "z_a")
        check_latents(z_b, self.latent_dim, "z_b")
        if z_a.shape != z_b.shape:
            raise ValueError(f"z_a and z_b must have the same shape, got {z_a.shape}, {z_b.shape}")
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"steps must be an int ≥ 1, got {steps!r}")
        t = self.sde.T if t is None else t
        with evaluating(self):
            fn = self.score_fn(ema)
            ends = probability_flow(fn, self.sde, torch.cat([z_a, z_b]), eps, t, **ode).z
            mid = interpolate(ends[: len(z_a)], ends[len(z_a) :], steps, method)
            path = probability_flow(fn, self.sde, mid.flatten(0, 1), t, eps, **ode).z
        path = path.view(mid.shape).clone()
        path[:, 0], path[:, -1] = z_a, z_b
        return path

    @torch.no_grad()
    def sample_images(self, aae, n: int, batch_size: int = 10_000, **kwargs) -> torch.Tensor:
        """Decoded samples G(z), z ~ model: (n, C, H, W); ``kwargs`` go to :meth:`sample`
        (``condition=``, ``guidance=``, ``scale=`` for class-conditional samples)."""
        z = self.sample(n, **kwargs).z
        return torch.cat([aae.decode(z[i : i + batch_size]) for i in range(0, n, batch_size)])

    def log_likelihood(self, z: torch.Tensor, ema: bool = True, **kwargs) -> LikelihoodResult:
        """log q_θ(z) in nats by the probability-flow ODE (:func:`likelihood.log_likelihood`)."""
        check_latents(z, self.latent_dim, "z")
        return log_likelihood(self.score_fn(ema), self.sde, z.to(self.device), **kwargs)

    def save(self, path: str | os.PathLike) -> Path:
        return save_tensors(path, self.state_dict(), CHECKPOINT_FORMAT, asdict(self.config))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> LatentDiffusion:
        """Rebuild from :meth:`save`'s safetensors file: the header's shapes are checked against
        the config before anything is allocated; no code from the file is executed."""
        return build_checked(cls.from_config, path, CHECKPOINT_FORMAT, device).eval()

    @classmethod
    def from_config(cls, config: dict) -> LatentDiffusion:
        """An untrained model from a config dict as written by :meth:`save`."""
        return cls(DiffusionConfig(**config))
