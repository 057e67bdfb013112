"""The first interface (latentnav.navigator) as an adapter over latentnav.navigation."""

import pytest
import torch

from latentnav.aae import AAE, AAEConfig
from latentnav.navigation import DensityCompass, DiscriminatorCompass, Stepwise, StepwiseConfig
from latentnav.navigator import Navigator, NavigatorConfig
from latentnav.networks import LatentDiscriminator


@pytest.fixture(scope="module")
def aae():
    torch.manual_seed(0)
    model = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(16,)))
    with torch.no_grad():
        model.discriminator.net[-1].weight.mul_(20)
    return model.eval()


def pairs():
    g = torch.Generator().manual_seed(2)
    return torch.randn(5, 3, generator=g), 1.5 * torch.randn(5, 3, generator=g)


@pytest.mark.parametrize("flags", [{}, {"objective": "prob"}, {"compass": "density"}])
@pytest.mark.parametrize("own", [True, False])
def test_a_navigator_config_runs_the_stepwise_method_with_that_compass_object(aae, flags, own):
    compass = None if own else LatentDiscriminator(3, (16,))
    logit = aae.discriminator if own else compass
    settings = dict(steps=6, eps=0.02, max_corrections=4)
    old = Navigator(aae, NavigatorConfig(**settings, **flags), compass=compass).path(*pairs())
    if flags.get("compass") == "density":
        wrapped = DensityCompass(logit, aae.prior)
    else:
        wrapped = DiscriminatorCompass(logit, flags.get("objective", "logit"))
    new = Stepwise(aae, wrapped, StepwiseConfig(**settings)).path(*pairs())
    assert torch.equal(old.z, new.z) and torch.equal(old.corrections, new.corrections)
    assert old.corrections.sum() > 0  # the compass did act
    assert old.config == new.config and old.method == "stepwise"


def test_old_config_flags_are_still_validated():
    with pytest.raises(ValueError, match="objective"):
        NavigatorConfig(objective="kl")
    with pytest.raises(ValueError, match="compass"):
        NavigatorConfig(compass="score")
    with pytest.raises(ValueError, match="steps"):
        NavigatorConfig(steps=0)
