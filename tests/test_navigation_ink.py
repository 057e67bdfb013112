"""The ink term (latentnav.navigation.ink, RESULTS §6.22): known answers, its floor from data, and
the default energy carrying it where the AAE stores its training latents."""

import math

import pytest
import torch
from torch import nn

from latentnav.aae import AAE, AAEConfig
from latentnav.navigation import Ink, Navigator, PathContext
from latentnav.navigation.energy import DEFAULT_INK, default_energy, label_free, with_classes
from latentnav.navigation.frames import choice_costs
from latentnav.navigation.ink import FLOOR_QUANTILE, FLOOR_SAMPLES, ink_floor, stored_latents


class Identity(nn.Module):
    def forward(self, z):
        return z


def test_ink_is_the_log_shortfall_of_each_interior_frame_below_the_floor():
    z = torch.tensor([[[3.0, 4.0], [0.3, 0.4], [1.0, 0.0], [0.0, 2.5], [0.0, 0.0], [6.0, 8.0]]])
    ink = Ink(2.0, 7.0)  # frames = z (identity decoder): norms 5 | 0.5, 1, 2.5, 0 | 10
    per_point = ink.per_point(PathContext(z, Identity()))
    expected = 7.0 * torch.tensor([[math.log(4), math.log(2), 0.0, math.log(2) - math.log(1e-12)]])
    torch.testing.assert_close(per_point, expected)
    torch.testing.assert_close(ink(PathContext(z, Identity())), expected.sum(1))
    assert ink.config() == {"term": "ink", "weight": 7.0, "floor": 2.0, "endpoints": True}
    assert Ink(2.0, 1.0).per_point(PathContext(z[:, [0, -1]], Identity())).shape == (1, 0)


def test_the_floor_drops_to_the_fainter_endpoint_unless_told_not_to():
    z = torch.tensor([[[0.8, 0.6], [0.3, 0.4], [1.0, 0.0], [6.0, 8.0]]])  # ends 1 and 10
    per_point = Ink(2.0, 1.0).per_point(PathContext(z, Identity()))  # n = min(2, 1, 10) = 1
    torch.testing.assert_close(per_point, torch.tensor([[math.log(2), 0.0]]))
    fixed = Ink(2.0, 1.0, endpoints=False).per_point(PathContext(z, Identity()))  # n = 2
    torch.testing.assert_close(fixed, torch.tensor([[math.log(4), math.log(2)]]))


def test_its_gradient_brightens_a_faint_frame_and_leaves_a_bright_one():
    z = torch.tensor([[[1.0, 0.0], [0.3, 0.3], [0.0, 1.0]], [[1.0, 0.0], [2.0, 2.0], [0.0, 1.0]]])
    z.requires_grad_(True)
    Ink(1.0, 1.0)(PathContext(z, Identity())).sum().backward()
    middle = torch.tensor([0.3, 0.3])  # d/dz of −log ‖z‖ is −z / ‖z‖²: descent moves outward
    torch.testing.assert_close(z.grad[0, 1], -middle / middle.square().sum())
    assert torch.equal(z.grad[1], torch.zeros(3, 2))


@pytest.mark.parametrize("floor, weight", [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0),
                                           (1.0, -1.0), ("1", 1.0)])  # fmt: skip
def test_bad_settings_are_named(floor, weight):
    with pytest.raises(ValueError, match="floor|weight"):
        Ink(floor, weight)


@pytest.fixture(scope="module")
def aae():
    torch.manual_seed(0)
    return AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(16,))).eval()


def test_the_floor_is_the_quantile_of_the_reconstructions_norms(aae):
    images = torch.rand(300, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        norms = aae.reconstruct(images).norm(dim=1).double()
    for q in (0.05, 0.5):
        assert ink_floor(aae, images, q) == pytest.approx(float(norms.quantile(q)), rel=1e-6)
        assert ink_floor(aae, images, q, batch_size=7) == pytest.approx(ink_floor(aae, images, q))
    many = torch.rand(FLOOR_SAMPLES + 900, 6, generator=torch.Generator().manual_seed(6))
    spread = many[torch.linspace(0, len(many) - 1, FLOOR_SAMPLES).round().long()]
    with torch.no_grad():  # at most FLOOR_SAMPLES images, evenly spaced, first and last included
        norms = aae.reconstruct(spread).norm(dim=1).double()
    assert ink_floor(aae, many) == pytest.approx(float(norms.quantile(FLOOR_QUANTILE)), rel=1e-6)
    with pytest.raises(ValueError, match="quantile"):
        ink_floor(aae, images, 1.0)
    with pytest.raises(ValueError, match="images"):
        ink_floor(aae, images[:0])


def test_without_images_the_floor_comes_from_the_stored_latents(aae):
    assert stored_latents(aae) is None
    with pytest.raises(ValueError, match="latent_bank"):
        ink_floor(aae)
    with pytest.raises(ValueError, match="latent_bank"):
        label_free(aae, aae.discriminator, ink_weight=1.0)
    bank = torch.randn(50, 3, generator=torch.Generator().manual_seed(3))
    stored = AAE(aae.config).eval()
    stored.load_state_dict(aae.state_dict())
    stored.latent_bank = bank
    with torch.no_grad():
        norms = aae.decode(bank).norm(dim=1).double()
    assert ink_floor(stored) == pytest.approx(float(norms.quantile(FLOOR_QUANTILE)), rel=1e-6)
    assert ink_floor(stored, quantile=0.5) == pytest.approx(float(norms.quantile(0.5)), rel=1e-6)


def test_the_default_energy_carries_ink_exactly_where_latents_are_stored(aae, tmp_path):
    compass = aae.discriminator
    assert "ink" not in [t["term"] for t in default_energy(aae, compass).config()]
    stored = AAE(aae.config).eval()
    stored.load_state_dict(aae.state_dict())
    stored.latent_bank = torch.randn(40, 3, generator=torch.Generator().manual_seed(4))
    stored.compass = compass
    energy = default_energy(stored, compass)
    assert energy.config() == label_free(stored, compass, ink_weight=DEFAULT_INK).config()
    assert energy.terms[-1].floor == ink_floor(stored) and energy.terms[-1].weight == DEFAULT_INK
    assert "ink" not in [t["term"] for t in default_energy(stored, compass, ink_weight=0).config()]
    # the front door's frame choice ranks by it too, and it survives a checkpoint
    nav = Navigator(stored, steps=4, iterations=2)  # no data graph stored: the capped frames
    assert "ink" in [t["term"] for t in nav.method.config()["costs"]]
    assert "ink" in [t["term"] for t in choice_costs(energy).config()]
    loaded = AAE.load(stored.save(tmp_path / "aae.safetensors"))
    assert default_energy(loaded, loaded.compass).config() == energy.config()
    classifier = nn.Linear(3, 4)
    found = with_classes(stored, compass, classifier, ink_weight=5.0, ink_floor=0.5).config()
    assert {"term": "ink", "weight": 5.0, "floor": 0.5, "endpoints": True} in found


def test_given_data_the_front_door_takes_the_floor_from_them(aae):
    images = torch.rand(60, 6, generator=torch.Generator().manual_seed(5))
    stored = AAE(aae.config).eval()
    stored.load_state_dict(aae.state_dict())
    stored.compass = aae.discriminator
    nav = Navigator(stored, data=images, steps=4, iterations=2)
    costs = nav.method.fallback.config()["costs"]  # "auto": the data graph first
    floor = ink_floor(stored, images)
    assert {"term": "ink", "weight": DEFAULT_INK, "floor": floor, "endpoints": True} in costs
    assert default_energy(stored, stored.compass, images=images).config()[-1] == costs[-1]
    stored.latent_bank = torch.randn(40, 3, generator=torch.Generator().manual_seed(7))
    found = default_energy(stored, stored.compass, images=images).terms[-1].floor
    assert found == ink_floor(stored)  # stored latents win over given images
    stored.latent_bank = None
    path = nav.path(torch.zeros(2, 3), torch.ones(2, 3))
    assert path.z.shape == (2, 5, 3) and torch.isfinite(path.z).all()
