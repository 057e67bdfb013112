"""Streaming: per-index noise (latentnav._chunks.IndexNoise) and chunked navigation and sampling.

Tolerances: paths and samples of a row depend on that row alone, so a prefix of a batch, a chunked
run and an unchunked run agree exactly for an elementwise compass (a closed form), and to 1e-5
(batched matrix products round by batch size) for an MLP compass or score network.
"""

import math

import pytest
import torch
from torch import nn

from latentnav._chunks import IndexNoise, check_chunk_size, map_chunks
from latentnav.aae import AAE, AAEConfig
from latentnav.navigation import DensityCompass, make_method
from latentnav.navigation.stepwise import Stepwise
from latentnav.networks import LatentDiscriminator
from latentnav.priors import StandardNormal

D = 4


class Shell(nn.Module):
    """ℓ = ‖z‖² − 4 (D = 0.5 on the sphere of radius 2), one dummy parameter for the checks."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, z):
        return z.square().sum(-1) - 4.0 + 0 * self.weight


class ShellAAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.discriminator, self.prior, self.latent_dim = Shell(), StandardNormal(D), D
        self.decoder = nn.Linear(D, 3)


@pytest.fixture(scope="module")
def aae():
    torch.manual_seed(0)
    model = AAE(AAEConfig(image_shape=(6,), latent_dim=D, hidden=(16,), disc_hidden=(16,)))
    model.compass = LatentDiscriminator(D, (16,))
    with torch.no_grad():  # sharp, so that the loop corrects (and draws noise)
        model.compass.net[-1].weight.mul_(20)
    return model.eval()


def pairs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g), 2.0 * torch.randn(n, D, generator=g)


# -- IndexNoise ---------------------------------------------------------------------------------
def test_index_noise_is_standard_normal_and_uncorrelated():
    xi = IndexNoise(0).normal((0, 0), 50_000, D)
    assert xi.shape == (50_000, D) and xi.dtype == torch.float32
    n = xi.numel()
    assert abs(xi.mean()) < 4 / math.sqrt(n)  # 4 standard errors
    assert abs(xi.var() - 1) < 4 * math.sqrt(2 / n)
    assert abs(xi.square().square().mean() - 3) < 4 * math.sqrt(96 / n)  # E ξ⁴ = 3, Var ξ⁴ = 96
    corr = torch.corrcoef(torch.cat([xi, xi.roll(1, 0)], 1).T)  # across columns and rows
    assert (corr - torch.eye(2 * D)).abs().max() < 4 / math.sqrt(50_000)
    tail = (xi.abs() > 1.959964).float().mean()  # two-sided 5 % tail
    assert abs(tail - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)


def test_index_noise_depends_on_the_row_index_only():
    full = IndexNoise(7).normal((3, 1), 100, D)
    assert torch.equal(IndexNoise(7, first=40).normal((3, 1), 10, D), full[40:50])
    rows = torch.tensor([5, 0, 99])
    assert torch.equal(IndexNoise(7).normal((3, 1), rows, D), full[rows])
    assert torch.equal(IndexNoise(7).normal((3, 1), 100, 2 * D)[:, :D], full)  # columns too
    for other in (IndexNoise(8).normal((3, 1), 100, D), IndexNoise(7).normal((1, 3), 100, D)):
        assert (other - full).abs().mean() > 0.5  # another seed / stream: other numbers
    draws = IndexNoise(7)
    first, second = draws.randn((100, D)), draws.randn((100, D))
    assert torch.equal(first, IndexNoise(7).normal((0,), 100, D)) and not torch.equal(first, second)
    assert torch.equal(IndexNoise(7).at(60).randn((40, D)), first[60:])


def test_index_noise_dtypes_and_bad_arguments():
    assert IndexNoise(0).normal((0,), 3, 2, torch.float64).dtype == torch.float64
    assert IndexNoise(0).normal((0,), 0, 2).shape == (0, 2)
    assert torch.isfinite(IndexNoise(-5).normal((0,), 1000, 2, torch.float16)).all()
    with pytest.raises(TypeError, match="seed"):
        IndexNoise(1.5)
    with pytest.raises(ValueError, match="first"):
        IndexNoise(0, first=-1)
    with pytest.raises(ValueError, match="stream"):
        IndexNoise(0).normal((-1,), 3, 2)
    with pytest.raises(ValueError, match="chunk_size"):
        check_chunk_size(0)


def test_map_chunks_covers_every_row_once():
    assert map_chunks(lambda a, b: (a, b), 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert map_chunks(lambda a, b: (a, b), 0, 4) == []


# -- stepwise Langevin noise does not depend on the batch ----------------------------------------
@pytest.mark.parametrize("skip", [True, False])
def test_stepwise_noise_prefix_of_a_batch_equals_the_smaller_batch_exactly(skip):
    aae = ShellAAE()
    compass = DensityCompass(aae.discriminator, aae.prior)
    nav = Stepwise(aae, compass, steps=6, langevin_noise=0.5, seed=3, skip_accepted=skip)
    a, b = pairs(24)
    big = nav.path(a, b)
    assert big.corrections.sum() > 0  # noise was drawn
    for k in (1, 7, 23):
        small = nav.path(a[:k], b[:k])
        assert torch.equal(big.z[:k], small.z)
        assert torch.equal(big.corrections[:k], small.corrections)
    tail = nav.path(a[5:], b[5:])  # another position in the batch: other noise
    assert not torch.equal(big.z[5:], tail.z)


def test_stepwise_noise_prefix_with_an_mlp_compass(aae):
    nav = make_method("stepwise", aae, steps=6, max_corrections=3, langevin_noise=0.3, seed=1)
    a, b = pairs(32, seed=2)
    big = nav.path(a, b)
    assert big.corrections.sum() > 0
    small = nav.path(a[:9], b[:9])
    torch.testing.assert_close(big.z[:9], small.z, atol=1e-5, rtol=1e-5)
    other = make_method("stepwise", aae, steps=6, max_corrections=3, langevin_noise=0.3, seed=2)
    assert not torch.allclose(other.path(a, b).z, big.z)
