"""Score networks for latents (DESIGN.md §4): a residual MLP with a time embedding.

    s_θ(z, t, y) = −ε_θ(c_in(t) z, t, y) / s(t),   c_in(t) = 1 / √(m(t)² + s(t)²)

The network predicts the noise ε of z_t = m(t) z_0 + s(t) ε (the parametrisation of DDPM and
score_sde's ``scale_by_sigma``), so the score has the right scale at every noise level; c_in keeps
the input at unit scale for VE's large σ (data assumed of order one, as the AAE prior makes it).
An optional condition y (class labels, or vectors) enters through the embedding, for the
conditional issue. Shapes: ``z: (B, d)``, ``t: (B,)``, ``y: (B,)`` int or ``(B, cond_dim)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from latentnav.sde import SDE

__all__ = ["ScoreNetConfig", "ScoreNet", "time_embedding"]


@dataclass(frozen=True)
class ScoreNetConfig:
    latent_dim: int = 8
    width: int = 256
    blocks: int = 3
    embed_dim: int = 128
    num_classes: int = 0
    cond_dim: int = 0

    def __post_init__(self) -> None:
        for name in ("latent_dim", "width", "blocks", "embed_dim"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {self.embed_dim}")
        if self.num_classes < 0 or self.cond_dim < 0:
            raise ValueError("num_classes and cond_dim must be ≥ 0")


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of 1000·t (DDPM / score_sde): (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None].to(freqs.dtype) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _Block(nn.Module):
    """Pre-norm residual block: h + W₂ SiLU(W₁ LN(h) + P e)."""

    def __init__(self, width: int, embed_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Linear(width, width)
        self.embed = nn.Linear(embed_dim, width)
        self.outer = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return h + self.outer(torch.nn.functional.silu(self.inner(self.norm(h)) + self.embed(e)))


class ScoreNet(nn.Module):
    """s_θ(z, t[, y]) for the marginals of ``sde``; ``noise(z, t, y)`` gives ε_θ."""

    def __init__(self, config: ScoreNetConfig, sde: SDE):
        super().__init__()
        self.config, self.sde = config, sde
        c = config
        self.time = nn.Sequential(
            nn.Linear(c.embed_dim, c.embed_dim), nn.SiLU(), nn.Linear(c.embed_dim, c.embed_dim)
        )
        if c.num_classes:
            # Index num_classes is the "no label" token (y = None, or label dropout).
            self.label = nn.Embedding(c.num_classes + 1, c.embed_dim)
        if c.cond_dim:
            self.cond = nn.Linear(c.cond_dim, c.embed_dim)
        self.inp = nn.Linear(c.latent_dim, c.width)
        self.blocks = nn.ModuleList(_Block(c.width, c.embed_dim) for _ in range(c.blocks))
        self.out_norm = nn.LayerNorm(c.width)
        self.out = nn.Linear(c.width, c.latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _embed(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        e = self.time(time_embedding(t, self.config.embed_dim))
        if self.config.num_classes:
            if y is None:
                y = torch.full_like(t, self.config.num_classes, dtype=torch.long)
            e = e + self.label(y)
        if self.config.cond_dim:
            if y is None:
                raise ValueError(f"y of shape (B, {self.config.cond_dim}) is required")
            e = e + self.cond(y)
        return torch.nn.functional.silu(e)

    def noise(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        """ε_θ(z, t, y): (B, d)."""
        mean, std = self.sde.marginal(t)
        c_in = (mean.square() + std.square()).rsqrt()[:, None]
        e = self._embed(t, y)
        h = self.inp(c_in * z)
        for block in self.blocks:
            h = block(h, e)
        return self.out(torch.nn.functional.silu(self.out_norm(h)))

    def forward(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        """Score s_θ(z, t, y) = −ε_θ / s(t): (B, d)."""
        return -self.noise(z, t, y) / self.sde.marginal(t)[1][:, None]
