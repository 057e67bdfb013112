"""Samplers with an analytic mixture-of-Gaussians score reproduce the mixture (DESIGN.md §4):
mode weights within ±3 %, per-mode means and variances; same seed, same samples; NFE counted."""

import pytest
import torch

from latentnav.sampling import SAMPLERS, pc_sample, probability_flow, sample
from latentnav.sde import VESDE, VPSDE, SubVPSDE

WEIGHTS = torch.tensor([0.3, 0.7])
CENTERS = torch.tensor([[-2.0, 1.0], [2.0, -1.0]])
STD = 0.4


def mixture_score(sde):
    """∇log p_t for p_0 = Σ w_k N(c_k, STD² I): p_t = Σ w_k N(m c_k, (m² STD² + s²) I)."""

    def score(z, t):
        m, s = sde.marginal(t)
        var = (m**2 * STD**2 + s**2)[:, None]  # (B, 1)
        diff = z[:, None, :] - m[:, None, None] * CENTERS  # (B, K, d)
        log_r = WEIGHTS.log() - 0.5 * diff.square().sum(-1) / var - var.log()  # d = 2
        r = torch.softmax(log_r, dim=1)
        return -(r[..., None] * diff).sum(1) / var

    return score


def _check_mixture(z):
    mode = (z[:, 0] > 0).long()
    assert (mode == 1).float().mean().item() == pytest.approx(0.7, abs=0.03)
    for k in (0, 1):
        zk = z[mode == k]
        assert torch.allclose(zk.mean(0), CENTERS[k], atol=0.06), zk.mean(0)
        assert torch.allclose(zk.std(0), torch.full((2,), STD), rtol=0.12), zk.std(0)


CASES = [
    ("em", VPSDE(), {"steps": 300}),
    ("reverse_diffusion", VPSDE(), {"steps": 300}),
    ("ancestral", VPSDE(), {"steps": 300}),
    ("pc", VPSDE(), {"steps": 200}),
    ("em", SubVPSDE(), {"steps": 300}),
    ("pc", VESDE(0.01, 10.0), {"steps": 300}),
    ("ancestral", VESDE(0.01, 10.0), {"steps": 300}),
    ("ode", VPSDE(), {}),
    ("ode", VESDE(0.01, 50.0), {}),
    ("langevin", VESDE(0.01, 10.0), {"levels": 20, "steps_per_level": 30}),
]


@pytest.mark.parametrize(
    ("sampler", "sde", "kw"), CASES, ids=[f"{c[0]}-{c[1].name}" for c in CASES]
)
def test_sampler_reproduces_mixture(sampler, sde, kw):
    g = torch.Generator().manual_seed(0)
    result = sample(mixture_score(sde), sde, (4000, 2), sampler, generator=g, **kw)
    assert result.z.shape == (4000, 2) and torch.isfinite(result.z).all()
    _check_mixture(result.z)
    assert result.nfe > 0


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_samples(sampler):
    sde = VESDE(0.01, 10.0) if sampler == "langevin" else VPSDE()
    kw = {"levels": 3, "steps_per_level": 5} if sampler == "langevin" else {}
    if sampler not in ("ode", "langevin"):
        kw["steps"] = 25
    run = lambda seed: sample(  # noqa: E731
        mixture_score(sde),
        sde,
        (64, 2),
        sampler,
        generator=torch.Generator().manual_seed(seed),
        **kw,
    )
    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a.z, b.z) and a.nfe == b.nfe
    if sampler != "ode":
        assert not torch.equal(a.z, c.z)


def test_nfe_counts():
    sde, score = VPSDE(), mixture_score(VPSDE())
    assert sample(score, sde, (4, 2), "em", steps=17).nfe == 17
    assert sample(score, sde, (4, 2), "pc", steps=27).nfe == 54
    assert pc_sample(score, sde, (4, 2), corrector_steps=2, steps=30).nfe == 90
    assert sample(score, sde, (4, 2), "ode", method="euler", steps=10).nfe == 10


def test_predictor_alone_without_denoise_and_given_start():
    sde = VPSDE()
    z_T = torch.zeros(5, 2)
    r = pc_sample(
        mixture_score(sde), sde, (5, 2), "euler_maruyama", None, steps=5, z_T=z_T, denoise=False
    )
    assert r.z.shape == (5, 2)
    with pytest.raises(ValueError, match="z_T must have shape"):
        pc_sample(mixture_score(sde), sde, (4, 2), z_T=z_T)


def test_bad_arguments():
    sde, score = VPSDE(), mixture_score(VPSDE())
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample(score, sde, (4, 2), "heun")
    with pytest.raises(ValueError, match="steps must be"):
        sample(score, sde, (4, 2), "em", steps=0)
    with pytest.raises(ValueError, match="eps must be"):
        sample(score, sde, (4, 2), "em", eps=0.0)
    with pytest.raises(ValueError, match="too few"):
        sample(score, sde, (4, 2), "pc", steps=10)
    with pytest.raises(ValueError, match="predictor must be"):
        pc_sample(score, sde, (4, 2), predictor="heun")
    with pytest.raises(ValueError, match="ancestral sampling"):
        sample(mixture_score(SubVPSDE()), SubVPSDE(), (4, 2), "ancestral", steps=30)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_max=5.0)], ids=type)
def test_probability_flow_is_the_gaussian_quantile_map(sde):
    """For data N(μ, diag v) the flow from t0 to t1 is affine per dimension:
    z_t1 − m1 μ = √(V1 / V0) (z_t0 − m0 μ), V = m² v + s² (marginals matched, order kept)."""
    mean0, var0 = torch.tensor([1.0, -0.5]), torch.tensor([0.25, 2.0])

    def score(z, t):
        return sde.true_score_gaussian(z, t, mean0, var0)

    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t0, t1 in ((1e-3, 1.0), (0.7, 0.05)):
        (m0, s0), (m1, s1) = (
            sde.marginal(torch.tensor([t], dtype=torch.float64)) for t in (t0, t1)
        )
        expected = m1 * mean0 + ((m1**2 * var0 + s1**2) / (m0**2 * var0 + s0**2)).sqrt() * (
            z - m0 * mean0
        )
        out = probability_flow(score, sde, z, t0, t1, rtol=1e-8, atol=1e-8)
        assert out.nfe > 0
        torch.testing.assert_close(out.z, expected, rtol=1e-5, atol=1e-5)
        back = probability_flow(score, sde, out.z, t1, t0, rtol=1e-8, atol=1e-8).z
        torch.testing.assert_close(back, z, rtol=1e-5, atol=1e-5)
    assert torch.equal(probability_flow(score, sde, z, 0.5, 0.5).z, z)
    with pytest.raises(ValueError, match="t_to must be in"):
        probability_flow(score, sde, z, 0.5, 0.0)
