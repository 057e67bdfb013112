"""The adversarial autoencoder: encoder E, decoder G, latent discriminator D_z (DESIGN.md §2).

Label convention: the discriminator's positive class ("real", label 1) is the prior p(z), the
negative class ("fake", label 0) is the aggregated posterior q(z) of encoded data. Hence
D_z(z) = σ(ℓ(z)) → p/(p+q) at the optimum and the logit ℓ(z) estimates log p(z) − log q(z):
D → 1 is a hole (p ≫ q), D → 0 an outlier (q ≫ p), D ≈ 0.5 the equilibrium.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from latentnav._checks import check_images, check_latents
from latentnav._validate import check_choice, check_int, check_real
from latentnav.checkpoint import build_checked, save_tensors
from latentnav.networks import (
    ConvDecoder,
    ConvEncoder,
    LatentDiscriminator,
    MLPDecoder,
    MLPEncoder,
)
from latentnav.priors import Prior, make_prior, prior_from_config

__all__ = ["AAEConfig", "AAE", "Region", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "latentnav.aae/1"


class Region(IntEnum):
    """Seed 001's table: where z lies by D_z(z)."""

    OUTLIER = -1
    EQUILIBRIUM = 0
    HOLE = 1


@dataclass
class AAEConfig:
    """Architecture of an AAE. ``image_shape`` is (C, H, W) for images or (n,) for flat data."""

    image_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 8
    family: Literal["mlp", "conv"] = "mlp"
    hidden: tuple[int, ...] = (1000, 1000)
    channels: tuple[int, ...] = (32, 64, 128)
    disc_hidden: tuple[int, ...] = (1000, 1000)
    disc_spectral_norm: bool = False
    prior: dict[str, Any] = field(default_factory=lambda: {"name": "normal"})
    region_band: tuple[float, float] = (0.2, 0.8)

    def __post_init__(self) -> None:
        for name in ("image_shape", "hidden", "channels", "disc_hidden", "region_band"):
            if not isinstance(getattr(self, name), tuple | list):
                raise ValueError(f"{name} must be a tuple, got {getattr(self, name)!r}")
            setattr(self, name, tuple(getattr(self, name)))
        if len(self.image_shape) not in (1, 3):
            raise ValueError(f"image_shape must be (C, H, W) or (n,), got {self.image_shape}")
        for name in ("image_shape", "hidden", "channels", "disc_hidden"):
            for i, width in enumerate(getattr(self, name)):
                check_int(width, f"{name}[{i}]", 1)
        self.image_shape = tuple(int(s) for s in self.image_shape)
        check_int(self.latent_dim, "latent_dim", 1)
        check_choice(self.family, "family", ("mlp", "conv"))
        if self.family == "conv" and len(self.image_shape) != 3:
            raise ValueError(f"family='conv' needs image_shape (C, H, W), got {self.image_shape}")
        if not isinstance(self.disc_spectral_norm, bool):
            raise ValueError(f"disc_spectral_norm must be a bool, got {self.disc_spectral_norm!r}")
        if not isinstance(self.prior, dict) or not isinstance(self.prior.get("name"), str):
            raise ValueError(f"prior must be a dict with a 'name', got {self.prior!r}")
        if len(self.region_band) != 2:
            raise ValueError(f"region_band must be a pair (lo, hi), got {self.region_band}")
        lo, hi = (check_real(b, f"region_band[{i}]") for i, b in enumerate(self.region_band))
        if not 0 < lo < 0.5 < hi < 1:
            raise ValueError(
                f"region_band must satisfy 0 < lo < 0.5 < hi < 1, got {self.region_band}"
            )


def _build_prior(spec: dict[str, Any], dim: int) -> Prior:
    if "dim" in spec or "means" in spec:  # a full Prior.config(), as saved in checkpoints
        return prior_from_config(spec)
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return make_prior(spec.get("name", "normal"), dim, **kwargs)


class AAE(nn.Module):
    """E, G, D_z and the prior p(z). ``x: (B, *image_shape)``, ``z: (B, latent_dim)``."""

    def __init__(self, config: AAEConfig | None = None):
        super().__init__()
        self.config = config = config or AAEConfig()
        d, shape = config.latent_dim, config.image_shape
        if config.family == "mlp":
            self.encoder: nn.Module = MLPEncoder(shape, d, config.hidden)
            self.decoder: nn.Module = MLPDecoder(d, shape, tuple(reversed(config.hidden)))
        else:
            self.encoder = ConvEncoder(shape, d, config.channels)
            self.decoder = ConvDecoder(d, shape, config.channels)
        self.discriminator = LatentDiscriminator(d, config.disc_hidden, config.disc_spectral_norm)
        self.prior = _build_prior(config.prior, d)
        if self.prior.dim != d:
            raise ValueError(f"prior has dim {self.prior.dim}, latent_dim is {d}")
        # Encoded training images (N, d), the nodes of the "graph" navigator; saved when set.
        self.register_buffer("latent_bank", None)
        # The training images' own k-NN graph (RESULTS §6.13): node latents (N, d), decoder
        # inverted for the worst-reconstructed; neighbours (N, k) int32; pixel lengths (N, k).
        self.register_buffer("data_latents", None)
        self.register_buffer("data_neighbours", None)
        self.register_buffer("data_lengths", None)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.config.image_shape

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """E(x): (B, *image_shape) → (B, d)."""
        return self.encoder(check_images(x, self.image_shape, "x"))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): (B, d) → (B, *image_shape) in [0, 1]."""
        return self.decoder(check_latents(z, self.latent_dim, "z"))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))

    def log_ratio(self, z: torch.Tensor) -> torch.Tensor:
        """ℓ(z) ≈ log p(z) − log q(z) (DESIGN.md §2): (B, d) → (B,)."""
        return self.discriminator(check_latents(z, self.latent_dim, "z"))

    def discriminate(self, z: torch.Tensor) -> torch.Tensor:
        """D_z(z) = σ(ℓ(z)) ∈ (0, 1), probability that z came from the prior: (B, d) → (B,)."""
        return torch.sigmoid(self.log_ratio(z))

    def region(self, z: torch.Tensor) -> torch.Tensor:
        """Region codes (B,) int64: HOLE (D > hi), OUTLIER (D < lo), else EQUILIBRIUM."""
        lo, hi = self.config.region_band
        d = self.discriminate(z)
        codes = torch.zeros_like(d, dtype=torch.int64)
        codes[d > hi] = Region.HOLE
        codes[d < lo] = Region.OUTLIER
        return codes

    def to_config(self) -> dict[str, Any]:
        """The config as plain data, with the prior's, the attached compass's when there is
        one (``aae.compass``, a refitted :class:`LatentDiscriminator`, DESIGN.md §3), the
        attached ``aae.cluster_classifier``'s shape, and the size of ``aae.latent_bank`` and the
        data graph's (N, k) when set."""
        config = asdict(self.config)
        config["prior"] = self.prior.config()
        compass = getattr(self, "compass", None)
        if isinstance(compass, LatentDiscriminator):
            config["compass"] = {"hidden": list(compass.hidden),
                                 "spectral_norm": compass.spectral_norm}  # fmt: skip
        classifier = getattr(self, "cluster_classifier", None)
        if classifier is not None:  # a LatentClassifier (navigation.clusters)
            config["cluster_classifier"] = {"classes": int(classifier.num_classes),
                                            "hidden": list(classifier.hidden)}  # fmt: skip
        if self.latent_bank is not None:
            config["latent_bank"] = int(self.latent_bank.shape[0])
        if self.data_neighbours is not None:
            config["data_graph"] = [int(n) for n in self.data_neighbours.shape]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AAE:
        """An untrained AAE (and compass) from :meth:`to_config`'s data."""
        config = dict(config)
        compass = config.pop("compass", None)
        bank = config.pop("latent_bank", None)
        graph = config.pop("data_graph", None)
        clusters = config.pop("cluster_classifier", None)
        aae = cls(AAEConfig(**config))
        if bank is not None:
            aae.latent_bank = torch.zeros(int(bank), aae.latent_dim)
        if graph is not None:
            n, k = (int(v) for v in graph)
            aae.data_latents = torch.zeros(n, aae.latent_dim)
            aae.data_neighbours = torch.zeros(n, k, dtype=torch.int32)
            aae.data_lengths = torch.zeros(n, k)
        if compass is not None:
            aae.compass = LatentDiscriminator(
                aae.latent_dim, tuple(compass["hidden"]), bool(compass["spectral_norm"])
            )
        if clusters is not None:
            from latentnav.latent_classifier import LatentClassifier

            aae.cluster_classifier = LatentClassifier(
                aae.latent_dim, int(clusters["classes"]), tuple(clusters["hidden"])
            )
        return aae

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights and config (and the attached compass and latent bank) to one
        safetensors file, atomically."""
        return save_tensors(path, self.state_dict(), CHECKPOINT_FORMAT, self.to_config())

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> AAE:
        """Rebuild an AAE (with its compass, if one was saved) from :meth:`save`'s file; no code
        from the file is executed, and its tensor shapes are checked against its config before
        the model is allocated."""
        return build_checked(cls.from_config, path, CHECKPOINT_FORMAT, device).eval()
