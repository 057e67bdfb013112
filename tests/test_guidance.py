import pytest
import torch

from latentnav.guidance import SCHEDULES, correction, guided_score, log_ratio
from latentnav.priors import GaussianMixture
from latentnav.ratio_fidelity import MixtureLogRatio
from latentnav.sampling import sample
from latentnav.sde import VPSDE
from latentnav.time_discriminator import TimeDiscriminator


def _mixture_score(mixture: GaussianMixture, sde):
    """∇log p_t for p_0 = Σ w_k N(μ_k, σ_k² I) in closed form: softmax responsibilities r_k(z),
    ∇log p_t = −Σ_k r_k (z − m μ_k) / v_k with v_k = m² σ_k² + s²."""
    means = mixture.means.double()
    var0 = torch.diagonal(mixture.scale_tril, dim1=-2, dim2=-1).double().square()[:, 0]  # (K,)
    log_w = mixture.weights.double().log()

    def score(z, t):
        m, s = sde.marginal(t)
        var = m[:, None] ** 2 * var0 + s[:, None] ** 2  # (B, K)
        diff = z[:, None, :] - m[:, None, None] * means  # (B, K, d)
        d = z.shape[1]
        log_r = log_w - 0.5 * diff.square().sum(-1) / var - 0.5 * d * var.log()
        r = torch.softmax(log_r, dim=1)
        return -(r[..., None] * diff / var[..., None]).sum(1)

    return score


def _pair(d: int):
    g = torch.Generator().manual_seed(d)
    mu = 2 * torch.randn(3, d, generator=g)
    data = GaussianMixture(mu, stds=0.4, weights=torch.tensor([0.5, 0.3, 0.2]))
    shifted = mu + 0.5 * torch.randn(3, d, generator=g)
    model = GaussianMixture(shifted, stds=0.7, weights=torch.tensor([0.2, 0.3, 0.5]))
    return data.to(torch.float64), model.to(torch.float64)


def _disc(d: int, dtype=torch.float32, seed: int = 0) -> TimeDiscriminator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TimeDiscriminator(d, hidden=(32, 32), embed_dim=16).to(dtype)


class _Forbidden(torch.nn.Module):
    """A discriminator that must not be evaluated."""

    def forward(self, z, t, y=None):
        raise AssertionError("the discriminator was evaluated although the weight is 0")


def _plain_score(z, t):
    return -z / (1 + t[:, None])


@pytest.mark.parametrize(
    "kw",
    [
        {"weight": 0.0, "schedule": "constant"},
        {"weight": 0.0, "schedule": "decreasing"},
        {"weight": 3.0, "schedule": "interval", "t_min": 0.6, "t_max": 0.8},
    ],
)
def test_zero_weight_returns_the_plain_score_bit_for_bit(kw):
    guided = guided_score(_plain_score, _Forbidden(), **kw)
    z, t = torch.randn(7, 3), torch.full((7,), 0.3)
    assert torch.equal(guided(z, t), _plain_score(z, t))
    assert torch.equal(guided.corrector(z, t), _plain_score(z, t))


def test_decreasing_schedule_is_off_at_T_and_zero_corrector_weight_is_off():
    z = torch.randn(4, 2)
    at_T = guided_score(_plain_score, _Forbidden(), 2.0, schedule="decreasing")
    assert torch.equal(at_T(z, torch.ones(4)), _plain_score(z, torch.ones(4)))
    disc = _disc(2)
    only_predictor = guided_score(_plain_score, disc, 2.0, corrector_weight=0.0)
    t = torch.full((4,), 0.2)
    assert torch.equal(only_predictor.corrector(z, t), _plain_score(z, t))
    assert not torch.equal(only_predictor(z, t), _plain_score(z, t))


@pytest.mark.parametrize("sampler", ["em", "pc"])
def test_zero_weight_reproduces_the_unguided_sampler(sampler):
    """γ = λ = 0: the same generator seed gives the same samples bit for bit."""
    sde, score = VPSDE(), _plain_score
    guided = guided_score(score, _Forbidden(), 0.0, corrector_weight=0.0)
    runs = [
        sample(fn, sde, (16, 2), sampler, steps=20, generator=torch.Generator().manual_seed(3)).z
        for fn in (score, guided)
    ]
    assert torch.equal(*runs)


def test_constant_logit_leaves_an_exact_score_unchanged():
    """D ≡ ½ (ℓ ≡ 0, last layer zeroed): ∇ℓ = 0, so the exact mixture score is returned as is."""
    data, _ = _pair(2)
    sde = VPSDE()
    exact = _mixture_score(data, sde)
    disc = _disc(2, torch.float64)
    torch.nn.init.zeros_(disc.out.weight)
    torch.nn.init.zeros_(disc.out.bias)
    z = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0.01, 1.0, 20, dtype=torch.float64)
    for guided in (guided_score(exact, disc, 5.0), guided_score(exact, disc, 1.0, clip=0.1)):
        assert torch.equal(guided(z, t), exact(z, t))


def test_correction_is_the_finite_difference_gradient_of_the_logit():
    disc = _disc(3, torch.float64)
    g = torch.Generator().manual_seed(1)
    z, t = torch.randn(5, 3, dtype=torch.float64, generator=g), torch.rand(5, dtype=torch.float64)
    h, fd = 1e-6, torch.empty_like(z)
    with torch.no_grad():
        for j in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[j] = h
            fd[:, j] = (disc(z + e, t) - disc(z - e, t)) / (2 * h)
    assert torch.allclose(correction(disc, z, t), fd, rtol=1e-6, atol=1e-9)
    guided = guided_score(_plain_score, disc, 2.5)
    with torch.no_grad():
        out = guided(z, t)
    assert torch.allclose(out - _plain_score(z, t), 2.5 * fd, rtol=1e-6, atol=1e-9)
    assert not out.requires_grad
    assert all(p.grad is None for p in disc.parameters())  # no parameter gradients kept


@pytest.mark.parametrize("d", [2, 8])
def test_model_score_plus_exact_log_ratio_gradient_is_the_data_score(d):
    """DESIGN.md §5: s_model + ∇(log p_t^data − log p_t^model) = ∇log p_t^data, at every t."""
    data, model = _pair(d)
    sde = VPSDE()
    guided = guided_score(_mixture_score(model, sde), MixtureLogRatio(data, model, sde), 1.0)
    g = torch.Generator().manual_seed(0)
    for t0 in (0.01, 0.1, 0.5, 1.0):
        z0 = torch.cat([data.sample(50, g), model.sample(50, g)])
        t = torch.full((100,), t0, dtype=torch.float64)
        z = sde.perturb(z0, t, torch.randn(z0.shape, generator=g, dtype=torch.float64))[0]
        truth = _mixture_score(data, sde)(z, t)
        assert torch.allclose(guided(z, t), truth, rtol=1e-8, atol=1e-8)
        assert not torch.allclose(_mixture_score(model, sde)(z, t), truth, atol=1e-3)


def test_clipping_bounds_the_correction_norm_per_sample():
    disc = _disc(2, torch.float64)
    g = torch.Generator().manual_seed(2)
    z, t = (
        3 * torch.randn(64, 2, dtype=torch.float64, generator=g),
        torch.rand(64, dtype=torch.float64),
    )
    free = guided_score(_plain_score, disc, 10.0)(z, t) - _plain_score(z, t)
    clip = float(free.norm(dim=1).median())
    clipped = guided_score(_plain_score, disc, 10.0, clip=clip)(z, t) - _plain_score(z, t)
    norms, free_norms = clipped.norm(dim=1), free.norm(dim=1)
    assert (norms <= clip * (1 + 1e-9)).all()
    small = free_norms <= clip
    assert torch.allclose(clipped[small], free[small])  # below the bound: untouched
    assert torch.allclose(norms[~small], torch.full_like(norms[~small], clip))  # above: on it
    cos = torch.nn.functional.cosine_similarity(clipped, free, dim=1)
    assert torch.allclose(cos, torch.ones_like(cos))  # the direction is kept


def test_schedule_values():
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    assert torch.equal(SCHEDULES["constant"](t, 2.0, 1.0, 0.0, 1.0), torch.full((5,), 2.0))
    dec = SCHEDULES["decreasing"](t, 2.0, 1.0, 0.0, 1.0)
    assert torch.allclose(dec, torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0]))
    inside = SCHEDULES["interval"](t, 2.0, 1.0, 0.25, 0.5)
    assert torch.equal(inside, torch.tensor([0.0, 2.0, 2.0, 0.0, 0.0]))
    guided = guided_score(_plain_score, _disc(2), 4.0, corrector_weight=1.0, schedule="decreasing")
    assert torch.allclose(guided.weights(t), 2 * dec)
    assert torch.allclose(guided.corrector.weights(t), dec / 2)
    assert guided_score(_plain_score, _disc(2), 4.0).corrector.weight == 4.0


def test_corrector_carries_its_own_weight():
    disc = _disc(2)
    z, t = torch.randn(6, 2), torch.full((6,), 0.3)
    guided = guided_score(_plain_score, disc, 2.0, corrector_weight=0.5)
    c = correction(disc, z, t)
    assert torch.allclose(guided(z, t) - _plain_score(z, t), 2.0 * c, atol=1e-6)
    assert torch.allclose(guided.corrector(z, t) - _plain_score(z, t), 0.5 * c, atol=1e-6)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"schedule": "cosine"}, "schedule"),
        ({"schedule": "interval"}, "t_min"),
        ({"schedule": "interval", "t_min": 0.5, "t_max": 0.2}, "t_min"),
        ({"clip": 0.0}, "clip"),
    ],
)
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        guided_score(_plain_score, _disc(2), 1.0, **kw)


def test_log_ratio_per_sample():
    disc = _disc(2)
    z = torch.randn(5, 2)
    got = log_ratio(disc, z, 1e-3)
    assert got.shape == (5,) and not got.requires_grad
    assert torch.equal(got, disc(z, torch.full((5,), 1e-3)).detach())
    data, model = _pair(2)
    truth = MixtureLogRatio(data, model, VPSDE())
    z64 = data.sample(4, torch.Generator().manual_seed(0))
    expected = data.log_prob(z64) - model.log_prob(z64)  # at t → 0 the marginals are p_0, q_0
    assert torch.allclose(log_ratio(truth, z64, 1e-7), expected, atol=1e-3)


def test_guided_probability_flow_with_the_exact_ratio_follows_the_data_ode():
    """The wrapper works inside the ODE sampler (torchdiffeq, under no_grad, expanded t): with ℓ*
    it integrates the data's probability flow, so it lands where the data score's ODE lands."""
    data, model = _pair(2)
    sde = VPSDE()
    guided = guided_score(_mixture_score(model, sde), MixtureLogRatio(data, model, sde), 1.0)
    kw = {"method": "rk4", "steps": 40, "dtype": torch.float64}
    z_T = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    runs = [
        sample(fn, sde, (32, 2), "ode", z_T=z_T, **kw).z
        for fn in (guided, _mixture_score(data, sde))
    ]
    assert torch.allclose(runs[0], runs[1], atol=1e-6)
    unguided = sample(_mixture_score(model, sde), sde, (32, 2), "ode", z_T=z_T, **kw).z
    assert (unguided - runs[1]).norm(dim=1).mean() > 0.1
