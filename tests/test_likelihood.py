"""ODE log-likelihood against the analytic Gaussian log-density (within 0.02 nats/dim), and exact
vs Hutchinson divergences (equal in expectation) — DESIGN.md §4."""

import math

import pytest
import torch

from latentnav.likelihood import bits_per_dim, log_likelihood
from latentnav.sde import VESDE, VPSDE, SubVPSDE

MU = torch.tensor([1.0, -2.0, 0.5])
# A full covariance, so that Hutchinson's estimate is not exact by accident (diagonal Jacobian).
L_CHOL = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.4, 0.7]])
COV = L_CHOL @ L_CHOL.T


def gaussian_score(sde):
    def score(z, t):
        m, s = sde.marginal(t)
        cov_t = m[:, None, None] ** 2 * COV + s[:, None, None] ** 2 * torch.eye(3)
        return -torch.linalg.solve(cov_t, (z - m[:, None] * MU)[..., None])[..., 0]

    return score


def _data(n, seed):
    return MU + torch.randn(n, 3, generator=torch.Generator().manual_seed(seed)) @ L_CHOL.T


@pytest.mark.parametrize(
    "sde", [VPSDE(), SubVPSDE(), VESDE(0.01, 100.0)], ids=["vp", "subvp", "ve"]
)
def test_ode_log_likelihood_matches_gaussian(sde):
    z = _data(300, 0)
    truth = torch.distributions.MultivariateNormal(MU, COV).log_prob(z)
    result = log_likelihood(gaussian_score(sde), sde, z)
    per_dim = (result.log_prob - truth).abs() / 3
    assert per_dim.mean() < 0.02 and per_dim.max() < 0.05, per_dim.max()
    assert result.nfe > 0 and result.z_T.shape == z.shape


@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
def test_hutchinson_agrees_with_exact_in_expectation(projection):
    sde = VPSDE()
    z = _data(1, 1).expand(400, 3).contiguous()
    exact = log_likelihood(gaussian_score(sde), sde, z[:1]).log_prob
    g = torch.Generator().manual_seed(2)
    hutch = log_likelihood(
        gaussian_score(sde), sde, z, divergence="hutchinson", projection=projection, generator=g
    ).log_prob
    assert hutch.std() > 1e-3  # the estimator is random per sample ...
    stderr = hutch.std() / math.sqrt(len(hutch))
    assert abs(hutch.mean() - exact[0]) < 4 * stderr + 1e-3  # ... and unbiased.


def test_bits_per_dim_and_errors():
    assert bits_per_dim(torch.tensor([-math.log(2) * 6]), 3).item() == pytest.approx(2.0)
    sde = VPSDE()
    with pytest.raises(ValueError, match="divergence"):
        log_likelihood(gaussian_score(sde), sde, _data(2, 0), divergence="skilling")
    with pytest.raises(ValueError, match="non-finite"):
        log_likelihood(gaussian_score(sde), sde, torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match=r"shape \(B, d\)"):
        log_likelihood(gaussian_score(sde), sde, torch.zeros(3))
