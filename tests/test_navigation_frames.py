"""Frames under a jump cap (latentnav.navigation.frames): the programme against brute force, and
the cap on a path with a jump."""

import itertools

import pytest
import torch

from latentnav.aae import AAE, AAEConfig
from latentnav.navigation import CappedFrames, LatentPath, make_method, select_frames
from latentnav.navigation.energy import Cycle, Density, Energy, PathContext, Smoothness, label_free
from latentnav.navigation.frames import choice_costs
from latentnav.networks import LatentDiscriminator


def largest_step(frames, index):
    return float((frames[list(index[1:])] - frames[list(index[:-1])]).norm(dim=-1).max())


def point_cost(costs, index):
    return float(costs[list(index[1:-1])].sum())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cap", [0.6, 1.0, 3.0])
def test_the_programme_finds_the_brute_force_optimum(cap, dtype):
    """Least point cost among the choices whose largest step is within max(cap, b*), b* the
    least largest step of any choice; in the inputs' precision (the judge in float64)."""
    g = torch.Generator().manual_seed(0)
    b, m1, steps = 4, 9, 4
    frames = torch.randn(b, m1, 3, generator=g).double().cumsum(1)  # a wandering polyline
    costs = torch.rand(b, m1, generator=g).double()
    caps = torch.full((b,), cap, dtype=torch.float64)
    index = select_frames(frames.to(dtype), costs.to(dtype), steps, caps)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
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
        assert largest_step(frames[i], found) <= bound + tol
        assert point_cost(costs[i], found) == pytest.approx(best, rel=tol, abs=tol)
    if cap == 0.6:
        assert binding > 0  # the bottleneck case is exercised


def test_the_programme_with_orders_finds_the_brute_force_optimum():
    """Candidates from two polylines (the layout of CappedFrames' mix): a step goes only to a later
    position, on either polyline."""
    g = torch.Generator().manual_seed(2)
    b, m, steps = 3, 5, 3
    main = torch.randn(b, m + 1, 2, generator=g).double().cumsum(1)
    other = (main + torch.randn(b, m + 1, 2, generator=g).double())[:, 1:-1]
    frames = torch.cat([main[:, :-1], other, main[:, -1:]], 1)
    order = torch.cat([torch.arange(m), torch.arange(1, m), torch.tensor([m])])
    costs = torch.rand(b, len(order), generator=g).double()
    caps = torch.full((b,), 1.0, dtype=torch.float64)
    index = select_frames(frames, costs, steps, caps, order)
    n = len(order)
    for i in range(b):
        sets = itertools.combinations(range(1, n - 1), steps - 1)  # each in order of position
        chains = [(0, *sorted(inner, key=lambda x: int(order[x])), n - 1) for inner in sets]
        choices = [j for j in chains if all(order[x] < order[y] for x, y in itertools.pairwise(j))]
        bound = max(1.0, min(largest_step(frames[i], j) for j in choices))
        best = min(point_cost(costs[i], j) for j in choices if largest_step(frames[i], j) <= bound)
        found = tuple(index[i].tolist())
        assert found in choices and largest_step(frames[i], found) <= bound + 1e-12
        assert point_cost(costs[i], found) == pytest.approx(best, rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="order must be"):
        select_frames(frames, costs, steps, caps, order.flip(0))


def dense_programme(frames, costs, steps, cap):
    """The programme over all N² steps at once, as select_frames first computed it: the
    bottleneck b* for every pair, then the cheapest choice under max(cap, b*)."""
    b, n = costs.shape
    dist = torch.cdist(frames, frames)
    dist = dist.masked_fill(~torch.ones(n, n, dtype=torch.bool).triu(1), float("inf"))
    reach = torch.full((b, n), float("inf"), dtype=dist.dtype)
    reach[:, 0] = 0
    for k in range(1, steps + 1):
        reach = torch.maximum(dist, reach[:, :, None]).amin(1)
        if k < steps:
            reach[:, -1] = float("inf")
    blocked = dist > torch.maximum(cap, reach[:, -1])[:, None, None]
    c = costs.clone()
    c[:, 0] = c[:, -1] = 0
    best = torch.full((b, n), float("inf"), dtype=dist.dtype)
    best[:, 0] = 0
    back = []
    for k in range(1, steps + 1):
        best, arg = best[:, :, None].expand(b, n, n).masked_fill(blocked, float("inf")).min(1)
        best = best + (c if k < steps else 0)
        if k < steps:
            best[:, -1] = float("inf")
        back.append(arg)
    index = torch.full((b, steps + 1), n - 1)
    for k in range(steps, 0, -1):
        index[:, k - 1] = back[k - 1].gather(1, index[:, k : k + 1])[:, 0]
    return index


@pytest.mark.parametrize("cap", [0.5, 1.5, 4.0])
def test_the_gathered_programme_matches_the_dense_one(cap):
    """select_frames keeps only each point's allowed predecessors (and runs the bottleneck only
    where the cap cannot hold): the same choices as the dense N × N programme, where it binds and
    where it does not."""
    g = torch.Generator().manual_seed(5)
    b, n, steps = 16, 60, 9
    frames = (0.3 * torch.randn(b, n, 4, generator=g)).double().cumsum(1)
    costs = torch.rand(b, n, generator=g).double()
    caps = torch.full((b,), cap, dtype=torch.float64) * torch.rand(b, generator=g).double().add(1)
    index = select_frames(frames, costs, steps, caps)
    assert torch.equal(index, dense_programme(frames, costs, steps, caps))


def test_inputs_that_require_gradients_are_fine():
    g = torch.Generator().manual_seed(4)
    frames = torch.randn(2, 9, 3, generator=g).cumsum(1).requires_grad_()
    costs = torch.rand(2, 9, generator=g).requires_grad_()
    index = select_frames(frames, costs, 4, torch.ones(2))
    assert torch.equal(index, select_frames(frames.detach(), costs.detach(), 4, torch.ones(2)))


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
    with pytest.raises(ValueError, match="mix"):
        CappedFrames(aae, base="slerp", mix=(1.0,))


def tiny_aae():
    """A small AAE with a compass, seeded, and the optimiser's default energy on it."""
    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(8,))).eval()
    aae.compass = LatentDiscriminator(3, (16,)).eval()
    return aae, make_method("optimizer", aae).energy


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
    aae, energy = tiny_aae()
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
    assert (frames.diff(dim=1).norm(dim=-1).amax(1) <= capped.ratio * top + 1e-5).all()
    assert torch.equal(path.records["over_cap"], torch.zeros(5))
    assert path.records["frame_index"].shape == (5, steps + 1)


class Detour(Jump):
    """A base method whose path runs by SLERP from z_a out to a far latent w and back to z_b."""

    def __init__(self, steps, w):
        super().__init__(steps)
        self.w = w

    def _path(self, z_a, z_b, callback):
        half = self.steps // 2
        w = self.w.expand_as(z_a)
        out = make_method("slerp", None, steps=half).path(z_a, w).z
        back = make_method("slerp", None, steps=self.steps - half).path(w, z_b).z
        return LatentPath(torch.cat([out, back[:, 1:]], 1), {}, self.name, self.config())


def test_mixing_in_slerp_holds_the_cap_where_the_path_alone_cannot():
    aae, energy = tiny_aae()
    g = torch.Generator().manual_seed(1)
    za, zb = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    base = Detour(8, 12 * torch.ones(3))._path(za, zb, None)
    alone = CappedFrames(aae, base="slerp", energy=energy).select(base)
    mixed = CappedFrames(aae, base="slerp", energy=energy, mix=(0.5, 0.0)).select(base)
    assert (alone.records["over_cap"] > 0).all()  # the detour is too long for T steps under c
    with torch.no_grad():  # held up to float32 cdist's error (the select_frames docstring)
        straight = make_method("slerp", None, steps=8).path(za, zb).decode(aae).flatten(2)
        cap = 1.2 * straight.diff(dim=1).norm(dim=-1).amax(1)
    assert (mixed.records["over_cap"] <= 1e-3 * cap).all()
    assert (alone.records["over_cap"] > 1e-3 * cap).all()
    assert torch.equal(mixed.z[:, 0], za) and torch.equal(mixed.z[:, -1], zb)
    assert mixed.config["mix"] == [0.5, 0.0]


def test_choice_costs_drop_the_cycle_and_only_the_cycle():
    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(16,))).eval()
    compass = LatentDiscriminator(3, (16,)).eval()
    energy = label_free(aae, compass)
    costs = choice_costs(energy)
    assert [type(t) for t in costs.terms] == [type(t) for t in energy.terms[:-1]]
    assert isinstance(energy.terms[-1], Cycle) and aae.encoder not in costs.modules()
    z = torch.randn(4, 9, 3)
    context = PathContext(z, aae.decoder)
    with torch.no_grad():  # the point costs: density alone (the max-jump term has none)
        density = next(t for t in energy.terms if isinstance(t, Density))
        torch.testing.assert_close(costs.per_point(context), density.per_point(context))
    only = Energy(Cycle(aae.encoder, 1.0))
    assert choice_costs(only) is only  # nothing else to rank by: the energy as it is
    assert choice_costs(Energy(Smoothness())).terms[0].__class__ is Smoothness
