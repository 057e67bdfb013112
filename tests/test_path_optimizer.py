"""Path-level optimiser: known answers on a linear decoder and a quadratic compass."""

import pytest
import torch
from torch import nn

from latentnav.interpolation import interpolate
from latentnav.path_optimizer import PathOptimizerConfig, optimize_paths, path_energy
from latentnav.priors import StandardNormal


class LinearAAE(nn.Module):
    def __init__(self, dim=3):
        super().__init__()
        self.decoder = nn.Linear(dim, 5, bias=False)
        with torch.no_grad():
            self.decoder.weight.copy_(torch.eye(5, dim))  # G(z) = z padded: pixel L2 = latent L2
        self.prior = StandardNormal(dim)


class Zero(nn.Module):
    def forward(self, z):
        return torch.zeros_like(z[:, 0])


def endpoints(n=6, dim=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, dim, generator=g) * 2, torch.randn(n, dim, generator=g) * 2


def test_zero_iterations_is_slerp_and_endpoints_are_exact():
    aae, (a, b) = LinearAAE(), endpoints()
    path = optimize_paths(aae, a, b, Zero(), PathOptimizerConfig(steps=8, iterations=0))
    torch.testing.assert_close(path.z, interpolate(a, b, 8))
    assert torch.equal(path.z[:, 0], a) and torch.equal(path.z[:, -1], b)


def test_smoothness_alone_straightens_the_path_under_a_linear_decoder():
    # With G linear and λ = 0 the minimum-energy path is the evenly spaced straight line.
    aae, (a, b) = LinearAAE(), endpoints()
    config = PathOptimizerConfig(steps=8, density_weight=0.0, iterations=400, lr=0.05, tol=1e-9)
    path = optimize_paths(aae, a, b, Zero(), config)
    torch.testing.assert_close(path.z, interpolate(a, b, 8, "lerp"), atol=2e-2, rtol=0)
    assert torch.equal(path.z[:, 0], a) and torch.equal(path.z[:, -1], b)


def test_energy_decreases_and_the_density_term_pulls_towards_high_log_q():
    aae, (a, b) = LinearAAE(), endpoints()
    start = interpolate(a, b, 8)
    config = PathOptimizerConfig(steps=8, density_weight=5.0, iterations=60)
    path = optimize_paths(aae, a, b, Zero(), config)
    before = path_energy(aae.decoder, Zero(), aae.prior, start, 5.0)
    after = path_energy(aae.decoder, Zero(), aae.prior, path.z, 5.0)
    assert (after <= before + 1e-4).all() and (after < before).any()
    # ℓ ≡ 0 makes log q = log p: interior points move towards the origin.
    assert path.z[:, 1:-1].norm(dim=-1).mean() < start[:, 1:-1].norm(dim=-1).mean()


def test_converged_pairs_stop_and_modules_are_restored():
    aae, (a, b) = LinearAAE(), endpoints()
    b[0] = a[0]  # a degenerate pair is converged from the first step
    aae.decoder.train()
    config = PathOptimizerConfig(steps=4, iterations=20, density_weight=0.0)
    path = optimize_paths(aae, a, b, Zero(), config)
    assert path.corrections[0, 1] < path.corrections[1:, 1].max()
    assert aae.decoder.training and all(p.requires_grad for p in aae.decoder.parameters())
    assert all(p.grad is None for p in aae.decoder.parameters())


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError, match="steps"):
        PathOptimizerConfig(steps=1)
    with pytest.raises(ValueError, match="lr"):
        PathOptimizerConfig(lr=0)
    with pytest.raises(ValueError, match="z_a and z_b"):
        optimize_paths(LinearAAE(), torch.zeros(2, 3), torch.zeros(3, 3), Zero())
