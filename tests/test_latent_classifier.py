"""Latent classifier: the Bayes posterior of two Gaussian classes, save/load, bad labels."""

import pytest
import torch
from test_compass import identity_aae

from latentnav.checkpoint import CheckpointError
from latentnav.compass import load_compass
from latentnav.latent_classifier import (
    LatentClassifierConfig,
    fit_latent_classifier,
    load_latent_classifier,
    save_latent_classifier,
)


def two_classes(n, g):
    """y ~ Bernoulli(1/2), z | y ~ N(±μ, I) with μ = (1, 0.5): p(y = 1 | z) = σ(2 μ·z)."""
    y = torch.randint(0, 2, (n,), generator=g)
    mu = torch.tensor([1.0, 0.5])
    return torch.randn(n, 2, generator=g) + (2 * y[:, None] - 1) * mu, y, mu


def test_fitted_posterior_matches_the_bayes_posterior(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        x, y, mu = two_classes(8000, g)
        config = LatentClassifierConfig(hidden=(32,), epochs=8, seed=0)
        classifier, report = fit_latent_classifier(identity_aae(), x, y, config=config)
    finally:
        torch.set_num_threads(threads)
    z, _, _ = two_classes(4000, g)
    with torch.no_grad():
        p = classifier(z).softmax(-1)[:, 1]
    truth = torch.sigmoid(2 * z @ mu)
    assert (p - truth).abs().mean() < 0.03
    bayes = float(torch.distributions.Normal(0, 1).cdf(mu.norm()))  # Bayes accuracy Φ(‖μ‖)
    assert abs(report["validation_accuracy"] - bayes) < 0.04
    assert report["num_classes"] == 2 and not classifier.training
    loaded = load_latent_classifier(save_latent_classifier(classifier, tmp_path / "c.safetensors"))
    assert torch.equal(loaded(z), classifier(z))
    with pytest.raises(CheckpointError, match="latent_classifier"):
        load_compass(tmp_path / "c.safetensors")


def test_validation_set_and_seed_determinism():
    g = torch.Generator().manual_seed(1)
    x, y, _ = two_classes(600, g)
    val = two_classes(200, g)[:2]
    config = LatentClassifierConfig(hidden=(8,), epochs=2, seed=3)
    first, report = fit_latent_classifier(identity_aae(), x, y, val, config)
    second, _ = fit_latent_classifier(identity_aae(), x, y, val, config)
    assert torch.equal(first(x), second(x))
    with torch.no_grad():
        expected = float((first(val[0]).argmax(1) == val[1]).float().mean())
    assert report["validation_accuracy"] == pytest.approx(expected)


def test_bad_labels_and_configs():
    aae, x = identity_aae(), torch.randn(10, 2)
    with pytest.raises(ValueError, match="labels must be"):
        fit_latent_classifier(aae, x, torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class indices"):
        fit_latent_classifier(aae, x, torch.zeros(10))
    with pytest.raises(ValueError, match="≥ 0"):
        fit_latent_classifier(aae, x, -torch.ones(10, dtype=torch.long))
    with pytest.raises(ValueError, match="validation labels"):
        fit_latent_classifier(aae, x, torch.zeros(10, dtype=torch.long), (x, torch.zeros(3)))
    for kwargs in ({"epochs": 0}, {"lr": 0.0}, {"holdout": 1.0}, {"batch_size": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            LatentClassifierConfig(**kwargs)


def test_given_latents_stand_in_for_the_encoded_images():
    g = torch.Generator().manual_seed(2)
    x, y, _ = two_classes(300, g)
    config = LatentClassifierConfig(hidden=(8,), epochs=2, seed=0)
    encoded, _ = fit_latent_classifier(identity_aae(), x, y, config=config)  # E = identity
    given, report = fit_latent_classifier(identity_aae(), None, y, config=config, latents=x)
    assert torch.equal(encoded(x), given(x)) and report["num_classes"] == 2
    with pytest.raises(ValueError, match="latents must be"):
        fit_latent_classifier(identity_aae(), None, y, latents=x[:, 0])
