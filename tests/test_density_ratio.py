import math

import pytest
import torch
from torch import nn

from latentnav.density_ratio import (
    RatioFitConfig,
    calibration,
    density_ratio_fidelity,
    fit_density_ratio,
)
from latentnav.networks import LatentDiscriminator
from latentnav.priors import GaussianMixture, Prior


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny MLPs train faster on one thread, and far faster when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pair() -> tuple[GaussianMixture, GaussianMixture]:
    """p: 8 wide Gaussians on a circle of radius 2 (a hole in the middle); q: N(0, 1.5² I)."""
    angle = torch.arange(8) * 2 * math.pi / 8
    ring = torch.stack([2 * angle.cos(), 2 * angle.sin()], -1)
    return GaussianMixture(ring, stds=0.4), GaussianMixture(torch.zeros(1, 2), stds=1.5)


class _ExactLogit(nn.Module):
    def __init__(self, p: Prior, q: Prior):
        super().__init__()
        self.p, self.q = p, q

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.p.log_prob(z) - self.q.log_prob(z)


def _disc(seed: int = 0, hidden=(64, 64)) -> LatentDiscriminator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LatentDiscriminator(2, hidden)


def _normal(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) + shift


def test_logit_tracks_true_log_ratio():
    p, q = _pair()
    cfg = RatioFitConfig(max_steps=2000, batch_size=512, eval_every=100, patience=5, seed=0)
    result = density_ratio_fidelity(p, q, 20_000, cfg, hidden=(64, 64))
    assert result["truth_spread"] > 2.0  # log p/q varies by nats where both are non-negligible
    assert result["n_points"] > 20_000
    assert result["pearson"] >= 0.9, result
    assert result["heldout_accuracy"] > 0.7


def test_early_stopping_restores_best_weights():
    real, fake = _normal(100, 0), _normal(100, 1, 1.0)  # tiny sets: learns, then overfits
    cfg = RatioFitConfig(max_steps=3000, batch_size=128, lr=3e-3, eval_every=10, patience=10)
    disc = _disc(hidden=(256, 256))
    result = fit_density_ratio(disc, real, fake, cfg)
    hist = result.history
    assert hist["step"][-1] < cfg.max_steps  # stopped early
    best = min(range(len(hist["step"])), key=hist["heldout_loss"].__getitem__)
    assert 0 < result.best_step == hist["step"][best] < hist["step"][-1]
    assert hist["heldout_loss"][-1] > hist["heldout_loss"][best]
    # heldout_loss is re-evaluated after restoring: equal to the best only if the weights are back
    assert result.heldout_loss == pytest.approx(hist["heldout_loss"][best], abs=1e-6)
    assert not disc.training


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_no_grad_leak_into_inputs(penalty):
    leaf_r, leaf_f = _normal(300, 0).requires_grad_(), _normal(300, 1, 1.0).requires_grad_()
    real, fake = leaf_r * 1.0, leaf_f * 1.0
    disc = _disc()
    cfg = RatioFitConfig(max_steps=30, batch_size=64, eval_every=10, gradient_penalty=penalty)
    result = fit_density_ratio(disc, real, fake, cfg)
    assert leaf_r.grad is None and leaf_f.grad is None
    assert all(math.isfinite(v) for v in result.history["train_loss"][1:])
    assert all(p.requires_grad for p in disc.parameters())


def test_deterministic_for_a_seed():
    real, fake = _normal(1000, 0), _normal(700, 1, 0.5)
    runs = []
    for seed in (3, 3, 4):
        disc = _disc()
        cfg = RatioFitConfig(max_steps=100, batch_size=128, eval_every=20, seed=seed)
        runs.append((fit_density_ratio(disc, real, fake, cfg), disc.state_dict()))
    (r0, s0), (r1, s1), (r2, s2) = runs
    assert r0.history == r1.history
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    assert r0.history != r2.history


def test_unequal_sizes_give_no_prior_offset():
    real, fake = _normal(4000, 0), _normal(400, 1)  # same law, 10:1 sizes: ℓ* = 0
    disc = _disc()
    cfg = RatioFitConfig(max_steps=300, batch_size=256, eval_every=50, weight_decay=1e-3)
    fit_density_ratio(disc, real, fake, cfg)
    with torch.no_grad():
        logits = disc(_normal(2000, 5))
    assert abs(float(logits.mean())) < 0.25


def test_calibration_of_the_exact_ratio():
    p, q = _pair()
    gen = torch.Generator().manual_seed(0)
    real, fake = p.sample(20_000, gen), q.sample(5_000, gen)
    cal = calibration(_ExactLogit(p, q), real, fake, bins=10)
    assert len(cal["bin_edges"]) == 11 and len(cal["mean_predicted"]) == 10
    assert sum(cal["count"]) == 25_000
    assert cal["ece"] < 0.03  # D* = p/(p+q) is calibrated for balanced classes
    edges = cal["bin_edges"]
    for mean_p, lo, hi in zip(cal["mean_predicted"], edges[:-1], edges[1:], strict=True):
        assert mean_p is None or lo <= mean_p <= hi
    biased = calibration(_ExactLogit(p, q), real + 0.8, fake, bins=10)  # wrong p → miscalibrated
    assert biased["ece"] > 2 * cal["ece"]


def test_config_validation():
    with pytest.raises(ValueError, match="holdout_fraction"):
        RatioFitConfig(holdout_fraction=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        RatioFitConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        RatioFitConfig(lr=0.0)
    with pytest.raises(ValueError, match="fake must have latent dim d=2"):
        fit_density_ratio(_disc(), _normal(10, 0), torch.zeros(10, 3), RatioFitConfig())
