"""Encoder, decoder and latent-discriminator families of the adversarial autoencoder (DESIGN.md §2).

Two families: MLPs for flat or small inputs (Makhzani et al. 2015 use 1000-1000 ReLU layers for
MNIST) and stride-2 convolutional nets for images (28×28 gray, 32×32 RGB, any H, W divisible by 4).
Decoders end in a sigmoid: images live in [0, 1]. The discriminator returns the logit ℓ(z);
D_z(z) = σ(ℓ(z)). It has no batch norm: its output for one z must not depend on the rest of the
batch, since the navigator evaluates it on arbitrary batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "mlp",
    "MLPEncoder",
    "MLPDecoder",
    "ConvEncoder",
    "ConvDecoder",
    "LatentDiscriminator",
]


def mlp(
    sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, spectral: bool = False
) -> nn.Sequential:
    """Linear layers ``sizes[0] → … → sizes[-1]`` with ``activation`` between them (not after)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.Linear(a, b)
        layers.append(nn.utils.parametrizations.spectral_norm(linear) if spectral else linear)
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """E: x (B, *input_shape) → z (B, latent_dim)."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = mlp([math.prod(input_shape), *hidden, latent_dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """G: z (B, latent_dim) → x̂ (B, *output_shape) in [0, 1]."""

    def __init__(self, latent_dim: int, output_shape: Sequence[int], hidden: Sequence[int]):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = mlp([latent_dim, *hidden, math.prod(output_shape)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z)).view(z.shape[0], *self.output_shape)


def _num_halvings(height: int, width: int) -> int:
    """Stride-2 stages for an H×W image: as many as keep both sides integral and ≥ 4, at most 3."""
    if height % 4 or width % 4:
        raise ValueError(
            f"convolutional AAE needs image height and width divisible by 4, got {height}×{width}"
        )
    n = 2
    while n < 3 and height % 2 ** (n + 1) == 0 and width % 2 ** (n + 1) == 0:
        if min(height, width) // 2 ** (n + 1) < 4:
            break
        n += 1
    return n


class ConvEncoder(nn.Module):
    """E: x (B, C, H, W) → z (B, latent_dim); stride-2 4×4 convolutions, then a linear head."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int, channels: Sequence[int]):
        super().__init__()
        c, h, w = input_shape
        n = _num_halvings(h, w)
        widths = [c, *list(channels)[:n]]
        if len(widths) != n + 1:
            raise ValueError(f"conv encoder needs {n} channel widths for {h}×{w}, got {channels}")
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = widths[-1] * (h // 2**n) * (w // 2**n)
        self.head = nn.Sequential(
            nn.Linear(flat, 256), nn.LeakyReLU(0.2), nn.Linear(256, latent_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvDecoder(nn.Module):
    """G: z (B, latent_dim) → x̂ (B, C, H, W) in [0, 1]; mirror of :class:`ConvEncoder`."""

    def __init__(self, latent_dim: int, output_shape: Sequence[int], channels: Sequence[int]):
        super().__init__()
        c, h, w = output_shape
        n = _num_halvings(h, w)
        widths = [*reversed(list(channels)[:n])]
        if len(widths) != n:
            raise ValueError(f"conv decoder needs {n} channel widths for {h}×{w}, got {channels}")
        self.start = (widths[0], h // 2**n, w // 2**n)
        self.head = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, math.prod(self.start)), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for a, b in zip(widths, [*widths[1:], c], strict=True):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.upsample = nn.Sequential(*layers[:-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.head(z).view(z.shape[0], *self.start)
        return torch.sigmoid(self.upsample(x))


class LatentDiscriminator(nn.Module):
    """ℓ: z (B, latent_dim) → logit (B,); D_z = σ(ℓ). Optional spectral norm, never batch norm."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], spectral_norm: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden, self.spectral_norm = tuple(hidden), spectral_norm
        self.net = mlp([latent_dim, *hidden, 1], activation=nn.ReLU, spectral=spectral_norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)
