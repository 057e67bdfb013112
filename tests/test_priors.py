import json
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from latentnav.data.toys import TOY_NAMES, toy_dataset, toy_distribution
from latentnav.priors import (
    PRIOR_NAMES,
    GaussianMixture,
    StandardNormal,
    SwissRoll,
    make_prior,
    prior_from_config,
)


def _priors(dim: int):
    return [StandardNormal(dim), GaussianMixture.on_circle(dim=dim), SwissRoll(dim=dim)]


def _grid_mass(prior, half_width: float = 7.0, h: float = 0.08) -> float:
    xs = torch.arange(-half_width, half_width + h / 2, h, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    return float(prior.double().log_prob(grid).exp().sum() * h * h)


@pytest.mark.parametrize("dim", [2, 5])
def test_shapes_and_dtypes(dim):
    gen = torch.Generator().manual_seed(0)
    for prior in _priors(dim):
        z = prior.sample(17, generator=gen)
        assert z.shape == (17, dim) and z.dtype == torch.float32
        assert prior.log_prob(z).shape == (17,)
        assert prior.score(z).shape == (17, dim)
        assert prior.double().sample(3).dtype == torch.float64


@pytest.mark.parametrize("prior", _priors(2), ids=PRIOR_NAMES)
def test_priors_integrate_to_one(prior):
    assert _grid_mass(prior) == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toys_integrate_to_one(name):
    assert _grid_mass(toy_distribution(name), half_width=6.0) == pytest.approx(1.0, abs=1e-2)


def test_extra_dims_are_standard_normal():
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    tail = -0.5 * (z[:, 2:].pow(2).sum(-1) + 2 * math.log(2 * math.pi))
    circle = GaussianMixture.on_circle
    for hi, lo in [(SwissRoll(dim=4), SwissRoll(dim=2)), (circle(dim=4), circle(dim=2))]:
        expected = lo.double().log_prob(z[:, :2]) + tail
        torch.testing.assert_close(hi.double().log_prob(z), expected)


def test_sample_moments():
    gen = torch.Generator().manual_seed(0)
    z = StandardNormal(3).sample(200_000, generator=gen)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=0.01, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.eye(3), atol=0.02, rtol=0)
    means = torch.tensor([[3.0, 0.0], [-1.0, 2.0], [0.0, -4.0]])
    mix = GaussianMixture(means, stds=0.5, weights=torch.tensor([0.5, 0.3, 0.2]))
    torch.testing.assert_close(mix.mean(), torch.tensor([1.2, -0.2]))
    z = mix.sample(200_000, generator=gen)
    torch.testing.assert_close(z.mean(0), mix.mean(), atol=0.02, rtol=0)


def test_mixture_matches_brute_force():
    gen = torch.Generator().manual_seed(3)
    k, d = 4, 3
    means = torch.randn(k, d, generator=gen, dtype=torch.float64)
    tril = torch.tril(torch.randn(k, d, d, generator=gen, dtype=torch.float64) * 0.3)
    tril.diagonal(dim1=-2, dim2=-1).copy_(torch.rand(k, d, generator=gen) + 0.3)
    weights = torch.rand(k, generator=gen, dtype=torch.float64) + 0.1
    mix = GaussianMixture(means, scale_tril=tril, weights=weights).double()
    z = torch.randn(1000, d, generator=gen, dtype=torch.float64) * 2
    comps = [MultivariateNormal(means[i], scale_tril=tril[i]).log_prob(z) for i in range(k)]
    comps = torch.stack(comps, -1)
    expected = torch.logsumexp(comps + (weights / weights.sum()).log(), -1)
    torch.testing.assert_close(mix.log_prob(z), expected)


def test_score():
    z = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        score = StandardNormal(3).score(z)
    torch.testing.assert_close(score, -z)
    assert not score.requires_grad
    mix = SwissRoll().double()
    zd = mix.sample(10, torch.Generator().manual_seed(0)) + 0.05
    eps = 1e-6
    steps = eps * torch.eye(2, dtype=torch.float64)
    fd = torch.stack([(mix.log_prob(zd + e) - mix.log_prob(zd - e)) / (2 * eps) for e in steps], -1)
    torch.testing.assert_close(mix.score(zd), fd, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dim", [2, 3])
def test_config_round_trip(dim):
    z = torch.randn(30, dim, generator=torch.Generator().manual_seed(0))
    means = torch.randn(2, dim)
    custom = GaussianMixture(means, stds=torch.rand(2, dim) + 0.5, weights=torch.tensor([1.0, 3]))
    for prior in [*_priors(dim), custom, make_prior("mixture", dim, k=6, radius=3.0)]:
        rebuilt = prior_from_config(json.loads(json.dumps(prior.config())))
        assert type(rebuilt) is type(prior) and rebuilt.dim == dim
        torch.testing.assert_close(rebuilt.log_prob(z), prior.log_prob(z))


def test_make_prior():
    assert isinstance(make_prior("normal", 4), StandardNormal)
    assert make_prior("mixture", 2, k=5).n_components == 5
    assert isinstance(make_prior("swiss-roll", 3), SwissRoll)
    with pytest.raises(ValueError, match="normal, mixture, swiss-roll"):
        make_prior("laplace", 2)
    with pytest.raises(TypeError):
        make_prior("normal", 2, k=3)
    with pytest.raises(ValueError, match="unknown prior"):
        prior_from_config({"name": "cauchy", "dim": 2})


def test_invalid_inputs_rejected():
    for prior in _priors(2):
        with pytest.raises(ValueError, match=r"z must have latent dim d=2"):
            prior.log_prob(torch.zeros(4, 3))
        with pytest.raises(ValueError, match=r"^z contains 1 non-finite"):
            prior.log_prob(torch.tensor([[0.0, float("nan")]]))
        with pytest.raises(ValueError, match=r"z must have latent dim"):
            prior.score(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="scale_tril"):
        GaussianMixture(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="stds"):
        GaussianMixture(torch.zeros(2, 2), stds=-1.0)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.zeros(2, 2), stds=1.0, weights=torch.tensor([1.0, -1.0]))


def test_toy_dataset_deterministic():
    for name in TOY_NAMES:
        a, b = toy_dataset(name, 500, seed=7), toy_dataset(name, 500, seed=7)
        assert a.shape == (500, 2)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.equal(a, toy_dataset(name, 500, seed=8))
    with pytest.raises(ValueError, match="ring8"):
        toy_distribution("checkerboard")


def test_toys_have_holes():
    ring = toy_distribution("ring8")
    centre, mode = torch.zeros(1, 2), torch.tensor([[2.0, 0.0]])
    assert float(ring.log_prob(mode) - ring.log_prob(centre)) > 50
    rings = toy_distribution("concentric_rings")
    between = torch.tensor([[1.75, 0.0]])
    assert float(rings.log_prob(torch.tensor([[2.5, 0.0]])) - rings.log_prob(between)) > 20
