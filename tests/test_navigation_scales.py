"""Scale-free energy weights (issue 12): data scales and the dimensionless preset."""

import pytest
import torch

from latentnav.aae import AAE, AAEConfig
from latentnav.interpolation import interpolate
from latentnav.navigation.energy import PathContext, label_free
from latentnav.navigation.scales import PathScales, path_scales, scale_free
from latentnav.networks import LatentDiscriminator


@pytest.fixture(scope="module")
def aae():
    torch.manual_seed(0)
    model = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(16,)))
    model.compass = LatentDiscriminator(3, (16,))
    return model.eval()


def test_scales_are_positive_seeded_and_follow_the_units(aae):
    images = torch.rand(300, 6, generator=torch.Generator().manual_seed(0))
    s = path_scales(aae, aae.compass, images, steps=8, pairs=32, seed=0)
    assert s == path_scales(aae, aae.compass, images, steps=8, pairs=32, seed=0)
    assert min(s.to_dict().values()) > 0
    # S₀ is pixel²: a decoder whose output is scaled by 2 has four times the smoothness scale
    # (the sigmoid output is rescaled after the fact here, so only S₀ changes).
    import copy

    wide = copy.deepcopy(aae)
    wide.decoder = torch.nn.Sequential(wide.decoder, _Scale(2.0))
    s2 = path_scales(wide, wide.compass, images, steps=8, pairs=32, seed=0)
    assert s2.smoothness == pytest.approx(4 * s.smoothness, rel=1e-5)


class _Scale(torch.nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


def test_scale_free_reproduces_label_free_in_the_scales_it_was_expressed_in(aae):
    # With S₀/σ_q = 30 and S₀/c₀ = 300, unit dimensionless weights are label_free's λ = 30, γ = 300.
    scales = PathScales(smoothness=6.0, log_q_spread=0.2, cycle=0.02)
    z = interpolate(torch.randn(4, 3), torch.randn(4, 3), 8).requires_grad_(True)
    ours = scale_free(aae, aae.compass, scales, density_weight=1.0, cycle_weight=1.0)
    theirs = label_free(aae, aae.compass)
    assert torch.equal(ours(PathContext(z, aae.decoder)), theirs(PathContext(z, aae.decoder)))
    assert ours.config() == theirs.config()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_scales_name_the_field(bad):
    with pytest.raises(ValueError, match="PathScales.cycle"):
        PathScales(smoothness=1.0, log_q_spread=1.0, cycle=bad)


def test_unknown_settings_and_bad_images_are_refused(aae):
    scales = PathScales(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="unknown setting"):
        scale_free(aae, aae.compass, scales, tau=3)
    with pytest.raises(ValueError, match="images"):
        path_scales(aae, aae.compass, torch.rand(1, 6))
