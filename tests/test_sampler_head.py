"""Every sampler shares one head ``(score_fn, sde, z, ts, *, generator, callback, progress)``:
registries instead of branches, a per-step callback, a corrector score for guidance, the
model's ``sample`` taking any score function (issue 11 §1)."""

import pytest
import torch
from test_sampling import mixture_score

from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.sampling import (
    PREDICTORS,
    SAMPLERS,
    SampleResult,
    register_predictor,
    sample,
    sample_pc,
    time_grid,
)
from latentnav.score_net import ScoreNetConfig
from latentnav.sde import VESDE, VPSDE, SubVPSDE

OPTIONS = {"langevin": {"steps_per_level": 3}, "ode": {"method": "euler"}}


def _sde(name):
    return VESDE(0.01, 10.0) if name == "langevin" else VPSDE()


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_takes_the_same_head_and_reports_every_step(name):
    sde = _sde(name)
    ts = time_grid(sde, 30)
    z = sde.prior_sample((16, 2), generator=torch.Generator().manual_seed(0))
    seen = []
    result = SAMPLERS[name](
        mixture_score(sde),
        sde,
        z,
        ts,
        generator=torch.Generator().manual_seed(1),
        callback=seen.append,
        progress=False,
        **OPTIONS.get(name, {}),
    )
    assert isinstance(result, SampleResult) and result.z.shape == (16, 2) and result.nfe > 0
    assert all(set(info) == {"i", "t", "z", "z_mean"} for info in seen)
    assert [info["i"] for info in seen] == list(range(len(seen)))
    assert len(seen) == (len(ts) if name == "langevin" else len(ts) - 1)
    times = torch.stack([info["t"] for info in seen])
    assert (times.diff() < 0).all() and times[-1] == ts[-1]
    if name != "langevin":  # the result is the last step's mean (denoise) or its state
        last = seen[-1]
        assert torch.equal(result.z, last["z_mean"]) or torch.equal(result.z, last["z"])


def test_time_grid_and_its_checks():
    sde = VPSDE()
    ts = time_grid(sde, 4, eps=0.2)
    torch.testing.assert_close(ts, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2]))
    with pytest.raises(ValueError, match="steps must be"):
        time_grid(sde, 0)
    with pytest.raises(ValueError, match="eps must be"):
        time_grid(sde, 4, eps=1.5)
    z = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="ts must decrease"):
        sample_pc(mixture_score(sde), sde, z, ts.flip(0))
    with pytest.raises(ValueError, match="ts must be a 1-D"):
        sample_pc(mixture_score(sde), sde, z, ts[:1])
    with pytest.raises(ValueError, match="z must have shape"):
        sample_pc(mixture_score(sde), sde, z[0], ts)


def test_a_new_predictor_is_a_registration_not_a_branch():
    """A predictor registered from outside runs inside the PC loop unchanged."""
    sde = VPSDE()
    calls = []

    @register_predictor("test_heun")
    def heun(sde, score_fn, z, t, dt, generator=None):
        calls.append(float(t[0]))
        rsde = sde.reverse(score_fn, probability_flow=True)
        d1 = rsde.sde(z, t)[0]
        guess = z - d1 * dt
        d2 = rsde.sde(guess, t - dt)[0]
        z = z - 0.5 * (d1 + d2) * dt
        return z, z

    try:
        r = sample(mixture_score(sde), sde, (8, 2), "pc", steps=10, predictor="test_heun",
                   corrector=None, generator=torch.Generator().manual_seed(0))  # fmt: skip
        assert len(calls) == 10 and r.nfe == 20 and torch.isfinite(r.z).all()
    finally:
        del PREDICTORS["test_heun"]


class _WithCorrector:
    def __init__(self, score, corrector):
        self.score, self.corrector = score, corrector

    def __call__(self, z, t):
        return self.score(z, t)


def test_corrector_steps_use_the_scores_corrector_attribute():
    sde = VPSDE()
    score = mixture_score(sde)
    run = lambda fn: sample(  # noqa: E731
        fn, sde, (64, 2), "pc", steps=30, generator=torch.Generator().manual_seed(0)
    )
    plain = run(score)
    same = run(_WithCorrector(score, score))
    assert torch.equal(plain.z, same.z) and plain.nfe == same.nfe == 60
    corrector_calls = []

    def zero(z, t):
        corrector_calls.append(1)
        return torch.zeros_like(z)

    other = run(_WithCorrector(score, zero))
    assert len(corrector_calls) == 30 and other.nfe == 60
    assert not torch.equal(plain.z, other.z)


def test_annealed_langevin_on_sub_vp_stays_finite_with_the_exact_score():
    """Regression (issue 15): NCSN's step rule α = lr·s(t)²/s(ε)² was ≈ 1650 for sub-VP and gave
    NaN samples; the step is capped at s(t)²."""
    sde = SubVPSDE()
    z = sample(mixture_score(sde), sde, (4000, 2), "langevin", levels=20, steps_per_level=30,
               generator=torch.Generator().manual_seed(0)).z  # fmt: skip
    assert torch.isfinite(z).all()
    assert (z[:, 0] > 0).float().mean().item() == pytest.approx(0.7, abs=0.05)


def test_latent_diffusion_samples_with_any_score_function():
    torch.manual_seed(0)
    net = ScoreNetConfig(latent_dim=2, width=16, blocks=1, embed_dim=8)
    model = LatentDiffusion(DiffusionConfig(net=net))
    assert not isinstance(model, __import__("lightning").LightningModule)
    default = model.sample(32, "em", steps=10, seed=4)
    explicit = model.sample(32, "em", steps=10, seed=4, score_fn=model.score_fn())
    assert torch.equal(default.z, explicit.z)
    exact = model.sample(32, "em", steps=10, seed=4, score_fn=mixture_score(model.sde))
    assert not torch.equal(default.z, exact.z)
    steps = []
    model.sample(8, "pc", steps=25, seed=0, callback=steps.append)
    assert len(steps) == 25
