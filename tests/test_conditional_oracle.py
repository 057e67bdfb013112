"""Gaussian-class oracle: its closed forms against autograd of the diffused densities, the error
measure, sampling a class with the exact conditional score through latentnav.sampling."""

import math

import pytest
import torch

from latentnav.conditional import GaussianClasses, score_error_by_time
from latentnav.sampling import sample
from latentnav.sde import VESDE, VPSDE

MEANS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
STDS = torch.tensor([0.4, 0.5, 0.3])
ORACLE = GaussianClasses(MEANS, STDS, torch.tensor([0.5, 0.3, 0.2]))


def _log_density(sde, z, t):
    """log p_t(z) = log Σ_k w_k N(z; m μ_k, v_k I), written independently of the oracle."""
    m, s = sde.marginal(t)
    var = m[:, None] ** 2 * STDS**2 + s[:, None] ** 2  # (B, K)
    sq = (z[:, None, :] - m[:, None, None] * MEANS).square().sum(-1)
    log_n = -0.5 * sq / var - (var * 2 * math.pi).log()  # d = 2
    return torch.logsumexp(ORACLE.weights.log() + log_n, 1)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(0.01, 10.0)], ids=["vp", "ve"])
def test_closed_forms_match_autograd_and_bayes(sde):
    g = torch.Generator().manual_seed(0)
    z = 2 * torch.randn(64, 2, generator=g)
    t = torch.rand(64, generator=g) * 0.9 + 0.05
    zg = z.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(_log_density(sde, zg, t).sum(), zg)
    assert torch.allclose(ORACLE.score(sde, z, t), auto, atol=1e-4)
    for k in range(3):
        exact = sde.true_score_gaussian(z, t, MEANS[k], STDS[k] ** 2)
        assert torch.allclose(ORACLE.conditional_score(sde, z, t, k), exact, atol=1e-5)
    # Bayes: the posterior-weighted conditional scores sum to the unconditional score.
    post = ORACLE.posterior(sde, z, t)
    assert torch.allclose(post.sum(1), torch.ones(64), atol=1e-6)
    mixed = sum(post[:, k, None] * ORACLE.conditional_score(sde, z, t, k) for k in range(3))
    assert torch.allclose(mixed, auto, atol=1e-4)


def test_score_error_by_time_is_zero_for_the_exact_score_and_known_for_an_offset():
    sde = VPSDE()
    z0, _ = ORACLE.sample(500, torch.Generator().manual_seed(1), labels=torch.zeros(500).long())
    exact = lambda z, t: ORACLE.conditional_score(sde, z, t, 0)  # noqa: E731
    times = torch.tensor([0.1, 0.5, 0.9])
    zero = score_error_by_time(exact, exact, sde, z0, times, torch.Generator().manual_seed(2))
    assert zero.abs().max().item() < 1e-10
    offset = lambda z, t: exact(z, t) + torch.tensor([0.3, 0.4])  # noqa: E731
    err = score_error_by_time(offset, exact, sde, z0, times, scale="none")
    assert torch.allclose(err, torch.full((3,), 0.25), atol=1e-5)
    scaled = score_error_by_time(offset, exact, sde, z0, times)
    assert torch.allclose(scaled, 0.25 * sde.marginal(times)[1] ** 2, atol=1e-5)


@pytest.mark.parametrize("k", [0, 2])
def test_sampling_a_class_with_the_exact_conditional_score(k):
    sde = VPSDE()
    score = lambda z, t: ORACLE.conditional_score(sde, z, t, k)  # noqa: E731
    gen = torch.Generator().manual_seed(k)
    z = sample(score, sde, (2000, 2), "em", steps=300, generator=gen).z
    assert torch.allclose(z.mean(0), MEANS[k], atol=0.06), z.mean(0)
    assert torch.allclose(z.std(0), STDS[k].expand(2), rtol=0.1), z.std(0)


def test_bad_input():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        ORACLE.conditional_score(VPSDE(), torch.zeros(4, 2), torch.ones(4), 3)
    with pytest.raises(ValueError, match="labels must have batch size 4"):
        ORACLE.conditional_score(VPSDE(), torch.zeros(4, 2), torch.ones(4), torch.zeros(3).long())
    with pytest.raises(ValueError, match=r"z must have latent dim d=2"):
        ORACLE.score(VPSDE(), torch.zeros(4, 3), torch.ones(4))
    with pytest.raises(ValueError, match=r"stds must be positive with shape \(3,\)"):
        GaussianClasses(MEANS, torch.ones(2))
