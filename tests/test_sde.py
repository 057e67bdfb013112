"""SDEs against closed forms: marginals vs the moment ODEs and Monte Carlo, true Gaussian scores,
prior densities, discretisations (DESIGN.md §4)."""

import math

import pytest
import torch

from latentnav.sde import VESDE, VPSDE, SDEConfig, SubVPSDE, make_sde

SDES = [VPSDE(), SubVPSDE(), VESDE(sigma_min=0.01, sigma_max=5.0)]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
def test_marginal_matches_moment_odes(sde):
    """For dz = a(t) z dt + g dw: dm/dt = a m, d(s²)/dt = 2 a s² + g² (integrated finely)."""
    n = 5_000
    ts = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    one = torch.ones(1, 1, dtype=torch.float64)
    # p_0 is the data, perturbed by s(0) (0 for VP / sub-VP, σ_min for VE, as in score_sde).
    m, v = 1.0, float(sde.marginal(ts[:1])[1][0]) ** 2
    checkpoints = {n // 10: None, n // 2: None, n: None}
    for i in range(n):
        t = ts[i : i + 1]
        drift, g = sde.sde(one, t)
        a = float(drift[0, 0])
        dt = 1.0 / n
        m, v = m + a * m * dt, v + (2 * a * v + float(g[0]) ** 2) * dt
        if i + 1 in checkpoints:
            mean, std = sde.marginal(ts[i + 1 : i + 2])
            assert float(mean[0]) == pytest.approx(m, rel=5e-3)
            assert float(std[0]) ** 2 == pytest.approx(v, rel=5e-3, abs=1e-5)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
def test_forward_simulation_matches_marginal(sde):
    """Euler–Maruyama on the forward SDE from Gaussian data lands on N(m μ, m² v + s²)."""
    g = torch.Generator().manual_seed(0)
    mu, var = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    z = mu + var.sqrt() * torch.randn(20_000, 2, generator=g)
    steps = 500
    for i in range(steps):
        t = torch.full((len(z),), i / steps)
        drift, diffusion = sde.sde(z, t)
        z = (
            z
            + drift / steps
            + diffusion[:, None] * (1 / steps) ** 0.5 * torch.randn(z.shape, generator=g)
        )
    m, s = sde.marginal(torch.ones(1))
    s0 = sde.marginal(torch.zeros(1))[1]
    expected_var = m**2 * var + s**2 - (m * s0) ** 2
    assert torch.allclose(z.mean(0), m * mu, atol=4 * (expected_var / len(z)).sqrt().max())
    assert torch.allclose(z.var(0), expected_var, rtol=0.05)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
def test_true_gaussian_score_is_gradient_of_marginal_log_density(sde):
    mu, var = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    z = torch.randn(7, 2, requires_grad=True)
    t = torch.rand(7) * 0.98 + 0.01
    m, s = sde.marginal(t)
    dist = torch.distributions.Normal(
        m[:, None] * mu, (m[:, None] ** 2 * var + s[:, None] ** 2).sqrt()
    )
    (grad,) = torch.autograd.grad(dist.log_prob(z).sum(), z)
    assert torch.allclose(sde.true_score_gaussian(z, t, mu, var), grad, atol=1e-5)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
def test_prior_log_prob_and_sample(sde):
    z = sde.prior_sample((50_000, 3), generator=torch.Generator().manual_seed(1))
    assert z.std().item() == pytest.approx(sde.prior_std(), rel=0.02)
    expected = torch.distributions.Normal(0.0, sde.prior_std()).log_prob(z[:10]).sum(1)
    assert torch.allclose(sde.prior_log_prob(z[:10]), expected, atol=1e-4)


def test_prior_matches_marginal_at_T():
    for sde in (VPSDE(), SubVPSDE()):
        m, s = sde.marginal(torch.ones(1))
        assert float(m) < 1e-2 and float(s) == pytest.approx(1.0, abs=1e-3)
    ve = VESDE(0.01, 50.0)
    assert float(ve.marginal(torch.ones(1))[1]) == pytest.approx(50.0)


def test_ve_discretisation_sums_variance():
    """NCSN steps: Σ G_i² over the grid = σ(T)² exactly (the variance added level by level)."""
    sde = VESDE(0.01, 10.0, steps=100)
    t = torch.linspace(1.0, 0.01, 100)
    _, g = sde.discretize(torch.zeros(100, 1), t)
    assert g.square().sum().item() == pytest.approx(10.0**2, rel=1e-4)


def test_reverse_probability_flow_halves_the_score_term():
    sde = VPSDE()
    score = lambda z, t: torch.ones_like(z)  # noqa: E731
    z, t = torch.zeros(3, 2), torch.full((3,), 0.5)
    f, g = sde.sde(z, t)
    drift, diffusion = sde.reverse(score).sde(z, t)
    drift_ode, diffusion_ode = sde.reverse(score, probability_flow=True).sde(z, t)
    assert torch.allclose(drift, f - g[:, None] ** 2)
    assert torch.allclose(drift_ode, f - 0.5 * g[:, None] ** 2)
    assert torch.equal(diffusion, g) and not diffusion_ode.any()


def test_make_sde_round_trip_and_errors():
    for sde in SDES:
        again = make_sde(sde.config())
        assert type(again) is type(sde) and again.config() == sde.config()
    assert isinstance(make_sde(SDEConfig(name="subvp")), SubVPSDE)
    with pytest.raises(ValueError, match="sde name"):
        make_sde("cosine")
    with pytest.raises(ValueError, match="sigma_min"):
        VESDE(1.0, 0.5)
    with pytest.raises(ValueError, match="steps"):
        VPSDE(steps=0)
    assert math.isfinite(VPSDE().prior_log_prob(torch.zeros(1, 4)).item())
