"""Compass calibration on an AAE whose aggregated posterior is known exactly."""

import torch
from torch import nn

from latentnav.aae import AAE, AAEConfig
from latentnav.compass import CompassConfig, fit_compass, load_compass, save_compass
from latentnav.density_ratio import RatioFitConfig
from latentnav.networks import LatentDiscriminator
from latentnav.priors import GaussianMixture


def identity_aae() -> AAE:
    """2-D 'images' encoded by the identity: q is the data distribution, p = N(0, I)."""
    aae = AAE(AAEConfig(image_shape=(2,), latent_dim=2, hidden=(8,), disc_hidden=(8,)))
    aae.encoder = nn.Identity()
    return aae


def test_compass_logit_tracks_the_true_log_ratio(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread is faster than two
    try:
        _check_compass(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _check_compass(tmp_path):
    q = GaussianMixture(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.2]]), stds=0.5)
    g = torch.Generator().manual_seed(0)
    data, validation = q.sample(20_000, g), q.sample(4_000, g)
    aae = identity_aae()
    fit = RatioFitConfig(max_steps=1500, batch_size=512, eval_every=100, patience=5, seed=0)
    compass, report = fit_compass(aae, data, validation, CompassConfig(hidden=(64, 64), fit=fit))
    assert not compass.training
    z = torch.cat([aae.prior.sample(5000, g), q.sample(5000, g)])
    lp, lq = aae.prior.log_prob(z), q.log_prob(z)
    keep = (lp > lp.quantile(0.1)) & (lq > lq.quantile(0.1))
    with torch.no_grad():
        estimate = compass(z)[keep]
    truth = (lp - lq)[keep]
    assert torch.corrcoef(torch.stack([truth, estimate]))[0, 1] > 0.9
    assert report["validation_calibration"]["ece"] < 0.05
    accuracy = report["validation_accuracy"]
    assert accuracy["compass"] > accuracy["aae_discriminator"]  # the AAE's D here is untrained
    loaded = load_compass(save_compass(compass, tmp_path / "compass.safetensors"))
    torch.testing.assert_close(loaded(z), compass(z))


def test_temperature_scaling_recovers_the_optimal_logit_scale():
    from latentnav.compass import temperature_scale

    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(20_000, 1, generator=g) + 1, torch.randn(20_000, 1, generator=g) - 1
    compass = LatentDiscriminator(1, ())  # a single Linear: ℓ = w z + b
    with torch.no_grad():
        compass.net[0].weight.fill_(0.5)
        compass.net[0].bias.zero_()
    # log N(z; 1, 1) − log N(z; −1, 1) = 2z, so the best scale of ℓ = 0.5 z is 4.
    a = temperature_scale(compass, real, fake)
    assert abs(a - 4.0) < 0.1
    torch.testing.assert_close(compass(torch.tensor([[1.0]])), torch.tensor([a * 0.5]))
