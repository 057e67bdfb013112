"""Score-matching losses recover a Gaussian's score (DESIGN.md §4): a model that can represent the
exact score of N(μ, diag v) at every t, trained by DSM, SSM and ESM, finds μ and v."""

import pytest
import torch
from torch import nn

from latentnav.losses import (
    dsm_loss,
    esm_loss,
    jacobian_trace,
    score_matching_loss,
    ssm_loss,
)
from latentnav.sde import VESDE, VPSDE, SubVPSDE

MU, VAR = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])


class GaussianScore(nn.Module):
    """s(z, t) = −(z − m μ) / (m² v + s²) with learnable μ and log v."""

    def __init__(self, sde):
        super().__init__()
        self.sde = sde
        self.mu = nn.Parameter(torch.zeros(2))
        self.log_var = nn.Parameter(torch.zeros(2))

    def forward(self, z, t):
        return self.sde.true_score_gaussian(z, t, self.mu, self.log_var.exp())


def _fit(loss_fn, sde, steps=400, **kw):
    torch.manual_seed(0)
    model = GaussianScore(sde)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = 0.05 if i < steps // 2 else 0.01
        z0 = MU + VAR.sqrt() * torch.randn(512, 2, generator=g)
        loss = loss_fn(model, sde, z0, generator=g, **kw)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.mu.detach(), model.log_var.exp().detach()


@pytest.mark.parametrize("loss_fn", [dsm_loss, ssm_loss, esm_loss], ids=["dsm", "ssm", "esm"])
@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(0.01, 5.0)], ids=["vp", "subvp", "ve"])
def test_loss_recovers_gaussian_score(loss_fn, sde):
    mu, var = _fit(loss_fn, sde)
    assert torch.allclose(mu, MU, atol=0.1), mu
    assert torch.allclose(var, VAR, rtol=0.15), var


@pytest.mark.parametrize("kind", ["dsm", "ssm", "esm"])
def test_likelihood_weighting_also_recovers_the_score(kind):
    mu, var = _fit(
        lambda *a, **k: score_matching_loss(kind, *a, weighting="likelihood", **k), VPSDE()
    )
    assert torch.allclose(mu, MU, atol=0.15) and torch.allclose(var, VAR, rtol=0.2)


def test_ssm_and_esm_agree_in_expectation():
    """Hutchinson's vᵀ∇(vᵀs) averages to tr ∇s: with many projections SSM ≈ ESM at equal noise."""
    sde = VPSDE()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 3))
    score = lambda z, t: net(z) * (1 + t[:, None])  # noqa: E731
    z0 = torch.randn(256, 3)
    losses = {}
    for name, fn, kw in [
        ("esm", esm_loss, {}),
        ("ssm_r", ssm_loss, {"n_projections": 400}),
        ("ssm_g", ssm_loss, {"n_projections": 400, "projection": "gaussian"}),
    ]:
        losses[name] = float(
            fn(score, sde, z0, generator=torch.Generator().manual_seed(3), **kw).detach()
        )
    assert losses["ssm_r"] == pytest.approx(losses["esm"], rel=0.02, abs=0.02)
    assert losses["ssm_g"] == pytest.approx(losses["esm"], rel=0.05, abs=0.05)


def test_jacobian_trace_of_linear_map():
    a = torch.randn(4, 4)
    z = torch.randn(5, 4, requires_grad=True)
    assert torch.allclose(jacobian_trace(z @ a.T, z, False), torch.full((5,), a.trace().item()))


def test_discrete_levels_and_errors():
    sde = VESDE(0.01, 5.0)
    levels = sde.noise_levels(10)
    stds = sde.marginal(levels)[1]
    assert torch.allclose(stds[:-1] / stds[1:], (stds[0] / stds[1]).expand(9), rtol=1e-4)
    model = GaussianScore(sde)
    loss = dsm_loss(model, sde, torch.randn(8, 2), levels=levels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="loss must be one of"):
        score_matching_loss("nce", model, sde, torch.randn(8, 2))
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(model, sde, torch.randn(8, 2), weighting="uniform")
    with pytest.raises(ValueError, match="projection"):
        ssm_loss(model, sde, torch.randn(8, 2), projection="sphere")
