"""Streaming: per-index noise (latentnav._chunks.IndexNoise) and chunked navigation and sampling.

Tolerances: paths and samples of a row depend on that row alone, so a prefix of a batch, a chunked
run and an unchunked run agree exactly for an elementwise compass or score (a closed form; the
σ(ℓ) record to 1e-6, as CPU kernels round a vector's tail apart from its body), and to 1e-5
(batched matrix products round by batch size) for an MLP compass.
"""

import math

import pytest
import torch
from torch import nn

from latentnav._chunks import IndexNoise, check_chunk_size, map_chunks
from latentnav.aae import AAE, AAEConfig
from latentnav.navigation import DensityCompass, LatentPath, make_method
from latentnav.navigation.stepwise import Stepwise, StepwiseConfig
from latentnav.networks import LatentDiscriminator
from latentnav.priors import StandardNormal
from latentnav.sampling import sample_chunked
from latentnav.sde import VESDE, VPSDE

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


# -- chunked navigation --------------------------------------------------------------------------
def test_chunked_stepwise_equals_unchunked_exactly():
    aae = ShellAAE()
    compass = DensityCompass(aae.discriminator, aae.prior)
    nav = Stepwise(aae, compass, steps=5, max_corrections=6, langevin_noise=0.5, seed=4)
    a, b = pairs(23)
    whole = nav.path(a, b, chunk_size=1000)
    assert whole.corrections.sum() > 0
    for size in (4, 22):
        part = nav.path(a, b, chunk_size=size)
        assert torch.equal(part.z, whole.z)
        for key, value in part.records.items():  # σ(ℓ): CPU kernels round tails differently
            torch.testing.assert_close(value, whole.records[key], atol=1e-6, rtol=1e-6)
    nav.chunk_size = 4  # the method's default chunk, used when the call gives none
    assert torch.equal(nav.path(a, b).z, whole.z)
    assert Stepwise(aae, compass, chunk_size=6).chunk_size == 6


@pytest.mark.parametrize(
    "name, options, tol",
    [("lerp", {}, 0.0), ("slerp", {}, 0.0), ("optimizer", {"iterations": 3}, 1e-5)],
)
def test_chunked_paths_of_other_methods_equal_unchunked(aae, name, options, tol):
    nav = make_method(name, aae, steps=5, **options)
    a, b = pairs(11, seed=5)
    whole, part = nav.path(a, b, chunk_size=11), nav.path(a, b, chunk_size=3)
    torch.testing.assert_close(part.z, whole.z, atol=tol, rtol=tol)
    assert set(part.records) == set(whole.records)
    for key, value in part.records.items():
        torch.testing.assert_close(value, whole.records[key], atol=tol, rtol=tol)


def test_chunked_callback_sees_every_chunk_with_its_offset():
    nav = make_method("lerp", ShellAAE(), steps=3)
    a, b = pairs(10)
    seen = []
    nav.path(a, b, callback=seen.append, chunk_size=4)
    assert [(info["offset"], info["k"], len(info["z"])) for info in seen] == [
        (o, k, n) for o, n in ((0, 4), (4, 4), (8, 2)) for k in (1, 2, 3)
    ]
    with pytest.raises(ValueError, match="chunk_size"):
        nav.path(a, b, chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        StepwiseConfig(chunk_size=2.5)


# -- chunked sampling ---------------------------------------------------------------------------
MEAN0, VAR0 = torch.tensor([1.0, -0.5]), torch.tensor([0.25, 0.04])


def gaussian_score(sde):
    """The exact score of data N(MEAN0, diag(VAR0)) diffused by ``sde`` (closed form)."""
    return lambda z, t: sde.true_score_gaussian(z, t, MEAN0, VAR0)


SAMPLER_CASES = {
    "em": (VPSDE, {}),
    "reverse_diffusion": (VPSDE, {}),
    "ancestral": (VPSDE, {}),
    "pc": (VPSDE, {"predictor": "euler_maruyama", "corrector": None}),
    "langevin": (lambda: VESDE(0.01, 5.0), {"steps_per_level": 5, "step_lr": 1e-4}),
    "ode": (VPSDE, {"method": "euler"}),
}


@pytest.mark.parametrize("name", sorted(SAMPLER_CASES))
def test_chunked_samples_equal_unchunked_and_have_the_known_moments(name):
    make_sde, options = SAMPLER_CASES[name]
    sde = make_sde()
    run = lambda size: sample_chunked(  # noqa: E731
        gaussian_score(sde), sde, (2000, 2), name, seed=9, chunk_size=size, steps=40, **options
    )
    whole, part = run(2000), run(700)
    assert torch.equal(part.z, whole.z) and part.nfe == whole.nfe > 0
    assert torch.isfinite(whole.z).all()
    se = (VAR0 / 2000).sqrt()  # the standard error of the mean
    assert ((whole.z.mean(0) - MEAN0).abs() < 5 * se + 0.02).all(), whole.z.mean(0)
    torch.testing.assert_close(whole.z.var(0), VAR0, rtol=0.15, atol=0.01)


def test_chunked_sampling_with_the_coupled_langevin_corrector_keeps_the_distribution():
    sde = VPSDE()
    run = lambda size: sample_chunked(  # noqa: E731
        gaussian_score(sde), sde, (2000, 2), "pc", seed=1, chunk_size=size, steps=40
    )
    whole, part = run(2000), run(500)
    assert not torch.equal(part.z, whole.z)  # the corrector's step averages over the chunk
    for z in (whole.z, part.z):
        assert ((z.mean(0) - MEAN0).abs() < 0.05).all()
        torch.testing.assert_close(z.var(0), VAR0, rtol=0.15, atol=0.01)


def test_sample_chunked_takes_z_T_extras_callback_and_checks_its_arguments():
    sde = VPSDE()
    z_T = sde.prior_sample((10, 2), generator=torch.Generator().manual_seed(0))
    seen = []
    out = sample_chunked(
        gaussian_score(sde), sde, (10, 2), "em", chunk_size=4, steps=3, z_T=z_T,
        callback=seen.append,
    )  # fmt: skip
    ref = sample_chunked(gaussian_score(sde), sde, (10, 2), "em", chunk_size=10, steps=3, z_T=z_T)
    assert torch.equal(out.z, ref.z) and out.z.shape == (10, 2)
    assert [info["offset"] for info in seen] == [0] * 3 + [4] * 3 + [8] * 3
    with pytest.raises(ValueError, match="chunk_size"):
        sample_chunked(gaussian_score(sde), sde, (10, 2), chunk_size=0)
    with pytest.raises(ValueError, match="z_T"):
        sample_chunked(gaussian_score(sde), sde, (10, 2), z_T=z_T[:3])
    with pytest.raises(ValueError, match="shape"):
        sample_chunked(gaussian_score(sde), sde, (0, 2))
    with pytest.raises(ValueError, match="sampler"):
        sample_chunked(gaussian_score(sde), sde, (4, 2), "nope")


def test_latent_paths_of_chunks_concatenate_in_order():
    a, b = pairs(9)
    path = make_method("slerp", ShellAAE(), steps=2).path(a, b, chunk_size=2)
    assert isinstance(path, LatentPath) and torch.equal(path.z[:, 0], a)


def test_sde_projection_is_chunk_free_and_prefix_stable(aae):
    from latentnav.diffusion import DiffusionConfig, LatentDiffusion
    from latentnav.score_net import ScoreNetConfig

    torch.manual_seed(1)
    net = ScoreNetConfig(latent_dim=D, width=16, blocks=1, embed_dim=8)
    diffusion = LatentDiffusion(DiffusionConfig(net=net)).eval()
    nav = make_method("sde", aae, diffusion=diffusion, steps=4, substeps=3, seed=5)
    a, b = pairs(10, seed=4)
    whole = nav.path(a, b)
    torch.testing.assert_close(nav.path(a, b, chunk_size=3).z, whole.z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(nav.path(a[:4], b[:4]).z, whole.z[:4], atol=1e-5, rtol=1e-5)
    # Chunks draw other noise than each other: pairs 0 and 3 with equal endpoints differ.
    same = nav.path(a[:1].repeat(4, 1), b[:1].repeat(4, 1), chunk_size=3)
    assert not torch.allclose(same.z[0], same.z[3])


def test_latent_diffusion_streams_its_samples_in_chunks():
    from latentnav.diffusion import DiffusionConfig, LatentDiffusion
    from latentnav.score_net import ScoreNetConfig

    torch.manual_seed(2)
    net = ScoreNetConfig(latent_dim=3, width=16, blocks=1, embed_dim=8)
    model = LatentDiffusion(DiffusionConfig(net=net)).eval()
    whole = model.sample(50, "em", seed=4, steps=10, chunk_size=50).z
    assert torch.equal(model.sample(50, "em", seed=4, steps=10, chunk_size=7).z, whole)
    assert whole.shape == (50, 3) and torch.isfinite(whole).all()
    with pytest.raises(ValueError, match="chunk_size"):
        model.sample(4, "em", condition=0, chunk_size=2)
