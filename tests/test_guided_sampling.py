"""Guided sampling through the common sampler head: the per-sample log-ratio of the result and
DG's boosting (re-noise the samples the discriminator calls fake, re-sample with doubled weight)."""

import pytest
import torch
from test_guidance import _mixture_score, _pair

from latentnav.guidance import guided_score, log_ratio, sample_guided
from latentnav.ratio_fidelity import MixtureLogRatio
from latentnav.sampling import SAMPLERS, time_grid
from latentnav.sde import VPSDE

SDE = VPSDE()


def _setup(n=2000):
    data, model = _pair(2)
    exact = MixtureLogRatio(data, model, SDE)  # ℓ* = log p_t^data − log p_t^model, closed form
    z = SDE.prior_sample((n, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = time_grid(SDE, 100, dtype=torch.float64)
    return _mixture_score(model, SDE), exact, z, ts


def _run(score, exact, z, ts, weight, sampler="em", **kw):
    guided = guided_score(score, exact, weight)
    g = torch.Generator().manual_seed(1)
    return sample_guided(guided, SDE, z, ts, sampler, generator=g, **kw)


def test_zero_weight_is_the_unguided_sampler_and_the_log_ratio_is_reported():
    score, exact, z, ts = _setup(500)
    plain = SAMPLERS["em"](score, SDE, z, ts, generator=torch.Generator().manual_seed(1))
    guided = _run(score, exact, z, ts, 0.0)
    assert torch.equal(plain.z, guided.z) and plain.nfe == guided.nfe
    assert torch.equal(guided.extras["log_ratio"], log_ratio(exact, guided.z, float(ts[-1])))
    assert guided.extras["log_ratio"].shape == (500,)


def test_guidance_and_boosting_leave_fewer_samples_the_discriminator_calls_fake():
    score, exact, z, ts = _setup()
    fake_share = lambda r: (r.extras["log_ratio"] < 0).double().mean().item()  # noqa: E731
    unguided, guided = _run(score, exact, z, ts, 0.0), _run(score, exact, z, ts, 1.0)
    boosted = _run(score, exact, z, ts, 1.0, boost_rounds=2, boost_time=0.3)
    shares = fake_share(unguided), fake_share(guided), fake_share(boosted)
    assert shares[1] < 0.8 * shares[0], shares
    assert shares[2] < shares[1], shares
    rounds = boosted.extras["boosted"]
    first = guided.extras["log_ratio"] < 0
    assert torch.equal(rounds > 0, first)  # exactly the samples called fake were boosted
    assert torch.equal(boosted.z[~first], guided.z[~first])  # the others are left alone
    assert boosted.nfe > guided.nfe


def test_bad_arguments():
    score, exact, z, ts = _setup(8)
    with pytest.raises(ValueError, match="sampler must be one of"):
        _run(score, exact, z, ts, 1.0, sampler="heun")
    with pytest.raises(ValueError, match="boost_time must be in"):
        _run(score, exact, z, ts, 1.0, boost_rounds=1, boost_time=2.0)
    with pytest.raises(ValueError, match="boost_rounds"):
        _run(score, exact, z, ts, 1.0, boost_rounds=-1)
