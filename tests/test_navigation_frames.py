"""Frames under a jump cap (latentnav.navigation.frames): the programme against brute force, and
the cap on a path with a jump."""

import itertools

import pytest
import torch

from latentnav.aae import AAE, AAEConfig
from latentnav.navigation import CappedFrames, LatentPath, make_method, select_frames
from latentnav.networks import LatentDiscriminator


def largest_step(frames, index):
    return float((frames[list(index[1:])] - frames[list(index[:-1])]).norm(dim=-1).max())


def point_cost(costs, index):
    return float(costs[list(index[1:-1])].sum())


@pytest.mark.parametrize("cap", [0.6, 1.0, 3.0])
def test_the_programme_finds_the_brute_force_optimum(cap):
    """Least point cost among the choices whose largest step is within max(cap, b*), b* the
    least largest step of any choice."""
    g = torch.Generator().manual_seed(0)
    b, m1, steps = 4, 9, 4
    frames = torch.randn(b, m1, 3, generator=g).double().cumsum(1)  # a wandering polyline
    costs = torch.rand(b, m1, generator=g).double()
    caps = torch.full((b,), cap, dtype=torch.float64)
    index = select_frames(frames, costs, steps, caps)
    assert index.shape == (b, steps + 1) and (index[:, 0] == 0).all() and (index[:, -1] == 8).all()
    assert (index.diff(dim=1) > 0).all()
    binding = 0
    for i in range(b):
        choices = [
            (0, *inner, m1 - 1) for inner in itertools.combinations(range(1, m1 - 1), steps - 1)
        ]
        bottleneck = min(largest_step(frames[i], j) for j in choices)
        bound = max(cap, bottleneck)
        binding += bottleneck > cap
        best = min(point_cost(costs[i], j) for j in choices if largest_step(frames[i], j) <= bound)
        found = index[i].tolist()
        assert largest_step(frames[i], found) <= bound + 1e-12
        assert point_cost(costs[i], found) == pytest.approx(best, rel=1e-9, abs=1e-12)
    if cap == 0.6:
        assert binding > 0  # the bottleneck case is exercised


def test_bad_arguments_are_named():
    frames, costs = torch.zeros(2, 5, 3), torch.zeros(2, 5)
    with pytest.raises(ValueError, match="steps must be an int in"):
        select_frames(frames, costs, 5, torch.ones(2))
    with pytest.raises(ValueError, match="cap"):
        select_frames(frames, costs, 2, torch.ones(3))
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(8,)))
    with pytest.raises(ValueError, match="ratio"):
        CappedFrames(aae, base="slerp", ratio=0)
    with pytest.raises(ValueError, match="subdivide"):
        CappedFrames(aae, base="slerp", subdivide=0)
    with pytest.raises(ValueError, match="energy="):
        CappedFrames(aae, base="slerp")


class Jump:
    """A base method whose path stays at z_a for half the frames, then jumps to z_b."""

    name = "jump"

    def __init__(self, steps):
        self.steps = steps

    def config(self):
        return {"steps": self.steps}

    def _path(self, z_a, z_b, callback):
        half = self.steps // 2
        z = torch.cat([z_a[:, None].expand(-1, half + 1, -1),
                       z_b[:, None].expand(-1, self.steps - half, -1)], 1)  # fmt: skip
        return LatentPath(z.clone(), {}, self.name, self.config())


def test_a_jump_is_spread_under_the_cap_and_the_endpoints_stay_exact():
    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(8,))).eval()
    aae.compass = LatentDiscriminator(3, (16,)).eval()
    energy = make_method("optimizer", aae).energy
    g = torch.Generator().manual_seed(1)
    za, zb = torch.randn(5, 3, generator=g), 2 * torch.randn(5, 3, generator=g)
    steps = 8
    base = Jump(steps)._path(za, zb, None)
    capped = CappedFrames(aae, base=make_method("slerp", aae), energy=energy, subdivide=32)
    path = capped.select(base)
    assert torch.equal(path.z[:, 0], za) and torch.equal(path.z[:, -1], zb)
    with torch.no_grad():
        frames = aae.decode(path.z.flatten(0, 1)).view(5, steps + 1, -1)
        slerp = aae.decode(make_method("slerp", aae, steps=steps).path(za, zb).z.flatten(0, 1))
        before = aae.decode(base.z.flatten(0, 1)).view(5, steps + 1, -1)
    top = slerp.view(5, steps + 1, -1).diff(dim=1).norm(dim=-1).amax(1)
    assert (before.diff(dim=1).norm(dim=-1).amax(1) > 2 * top).all()  # the base jumps
    assert (frames.diff(dim=1).norm(dim=-1).amax(1) <= 1.3 * top + 1e-5).all()
    assert torch.equal(path.records["over_cap"], torch.zeros(5))
    assert path.records["frame_index"].shape == (5, steps + 1)
