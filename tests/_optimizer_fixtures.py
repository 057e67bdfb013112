"""Shared fixture of the optimiser tests (smoothing, coarse to fine): a tiny untrained AAE with a
compass and five seeded pairs; test modules load it with ``pytest_plugins``."""

from __future__ import annotations

import pytest
import torch

from latentnav.aae import AAE, AAEConfig
from latentnav.networks import LatentDiscriminator


@pytest.fixture(scope="module")
def setup():
    """(aae, compass, z_a (5, 3), z_b (5, 3))."""
    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(16,))).eval()
    compass = LatentDiscriminator(3, (16,)).eval()
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 3, generator=g), 1.5 * torch.randn(5, 3, generator=g)
    return aae, compass, a, b
