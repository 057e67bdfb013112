"""A small noise-prediction MLP for conditional and joint scores (DESIGN.md §4, §6).

    ε_θ(x, t, c) = MLP([c_in ⊙ x, c, e(t)]),   c_in = 1 / √(m² + s²) per dimension

``x: (B, n)`` is z_t (CDE) or the joint state (z_t, y_t) (CDiffE, CMDE), ``c: (B, k)`` the clean
condition (CDE) or absent, ``t: (B,)``; the estimator turns ε_θ into a score by −ε_θ / s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from latentnav.score_net import time_embedding

__all__ = ["NoiseNetConfig", "NoiseNet"]


@dataclass(frozen=True)
class NoiseNetConfig:
    dim: int
    cond_dim: int = 0
    width: int = 128
    depth: int = 3
    embed_dim: int = 32

    def __post_init__(self) -> None:
        for name in ("dim", "width", "depth", "embed_dim"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
        if not (isinstance(self.cond_dim, int) and self.cond_dim >= 0):
            raise ValueError(f"cond_dim must be an int ≥ 0, got {self.cond_dim!r}")
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {self.embed_dim}")


class NoiseNet(nn.Module):
    """ε_θ(x, t, c, c_in): the input scale ``c_in: (B, n)`` comes from the estimator's SDEs."""

    def __init__(self, config: NoiseNetConfig):
        super().__init__()
        self.config = c = config
        layers: list[nn.Module] = []
        width_in = c.dim + c.cond_dim + c.embed_dim
        for i in range(c.depth):
            layers += [nn.Linear(width_in if i == 0 else c.width, c.width), nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.Linear(c.width, c.dim))

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, c_in: torch.Tensor
    ) -> torch.Tensor:
        parts = [c_in * x]
        if self.config.cond_dim:
            if cond is None:
                raise ValueError(f"cond of shape (B, {self.config.cond_dim}) is required")
            parts.append(cond)
        parts.append(time_embedding(t, self.config.embed_dim))
        return self.body(torch.cat(parts, dim=1))
