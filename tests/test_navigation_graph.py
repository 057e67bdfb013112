"""The data-graph method (latentnav.navigation.graph) against cases with a known geodesic."""

import math

import pytest
import torch
from torch import nn

from latentnav.navigation import make_method
from latentnav.navigation.graph import (
    DataGraph,
    attach_data_graph,
    data_bank,
    has_data_graph,
    resample,
)


class IdentityAAE(nn.Module):
    """decode(z) = z: decoded distances are latent distances, so geodesics are known."""

    latent_dim = 2

    def __init__(self):
        super().__init__()
        self.decoder = nn.Identity()

    def decode(self, z):
        return z

    def encode(self, x):
        return x


def circle(n, radius=1.0):
    angle = torch.arange(n) * (2 * math.pi / n)
    return radius * torch.stack([angle.cos(), angle.sin()], 1)


def test_the_geodesic_follows_a_circle_of_data_along_the_shorter_arc():
    aae, bank = IdentityAAE(), circle(360)
    ends = torch.tensor([[0.3, 0.9]]) * math.pi  # both arcs of the pair, either direction
    z_a, z_b = (torch.stack([e.cos(), e.sin()], 1) for e in ends.T)
    path = make_method("graph", aae, bank=bank, steps=16, k=4).path(
        torch.cat([z_a, z_b]), torch.cat([z_b, z_a])
    )
    radius = path.z.norm(dim=-1)
    assert (radius - 1).abs().max() < 1e-3  # on the circle; LERP's chord dips to cos(0.3π)
    angle = torch.atan2(path.z[..., 1], path.z[..., 0])
    forward, backward = angle[0].diff(), angle[1].diff()
    assert (forward > 0).all() and (backward < 0).all()  # monotone, shorter arc
    step = (path.z[:, 1:] - path.z[:, :-1]).norm(dim=-1)
    assert step.max() / step.min() < 1.05  # equal arc length
    assert (path.records["hops"] == 107).all()  # 108° / 1° − 1 bank nodes between


def test_far_data_leaves_the_straight_path():
    aae, bank = IdentityAAE(), circle(50, radius=100.0)
    z_a, z_b = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.5]])
    path = make_method("graph", aae, bank=bank, steps=4, k=3, power=2.0).path(z_a, z_b)
    expected = z_a + torch.linspace(0, 1, 5)[:, None] * (z_b - z_a)
    torch.testing.assert_close(path.z[0], expected)
    assert path.records["hops"].tolist() == [0]
    torch.testing.assert_close(path.records["cost"], torch.tensor([1.25]))  # ‖b − a‖², p = 2


def test_stopping_each_search_at_its_direct_edge_changes_no_chain(monkeypatch):
    """geodesics limits each Dijkstra to its pair's direct-edge cost (no chain costs more): the
    same chains and costs as searches over the whole graph."""
    import scipy.sparse.csgraph as csgraph

    g = torch.Generator().manual_seed(3)
    aae, bank = IdentityAAE(), torch.randn(400, 2, generator=g)
    graph = DataGraph(aae, bank, 6, 3.0, "latent")
    z_a, z_b = torch.randn(2, 30, 2, generator=g)
    z_b[:5] = z_a[:5] + 0.01  # pairs whose direct edge wins
    chains, costs = graph.geodesics(z_a, z_b)
    full = csgraph.dijkstra
    seen = []

    def unlimited(*args, limit=None, **kwargs):
        seen.append(limit)
        return full(*args, **kwargs)

    monkeypatch.setattr(csgraph, "dijkstra", unlimited)
    reference, reference_costs = graph.geodesics(z_a, z_b)
    assert all(limit is not None for limit in seen) and len(seen) == 30
    assert chains == reference and (costs == reference_costs).all()
    assert sum(len(c) == 0 for c in chains) >= 5 and sum(len(c) > 3 for c in chains) >= 5


def test_resample_is_even_in_decoded_arc_length_on_a_polyline():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 3.0]])
    z = resample(points, points, 4)  # length 4: points at arc 0, 1, 2, 3, 4
    torch.testing.assert_close(z, torch.tensor([[0, 0], [1, 0], [1, 1], [1, 2], [1, 3.0]]))


def test_one_graph_serves_several_methods_and_the_config_is_plain_data():
    aae = IdentityAAE()
    graph = DataGraph(aae, circle(40), k=3, power=2.0)
    a = make_method("graph", aae, graph=graph, steps=5)
    b = make_method("graph", aae, graph=graph, steps=9)
    z = circle(40)[:2]
    assert a.path(z[0], z[1]).z.shape == (1, 6, 2) and b.path(z[0], z[1]).z.shape == (1, 10, 2)
    expected = {"steps": 5, "k": 3, "power": 2.0, "neighbours": "latent", "hop": None}
    expected.update(snap=False, bank=40, invert=None)
    assert a.config() == expected


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "needs bank="),
        ({"bank": torch.zeros(10, 3)}, "latent dim 2"),
        ({"bank": torch.zeros(10, 2, dtype=torch.long)}, r"floating tensor \(N, d\)"),
        ({"bank": torch.full((10, 2), float("nan"))}, "non-finite"),
        ({"bank": torch.zeros(10, 2), "k": 10}, r"k must be an int in \[1, N − 1\]"),
        ({"bank": torch.zeros(10, 2), "k": 3, "power": 0}, "power must be > 0"),
        (
            {"bank": torch.zeros(10, 2), "k": 3, "neighbours": "data"},
            r'"data" needs images= \(N = 10',
        ),
        (
            {"bank": torch.zeros(10, 2), "k": 3, "images": torch.zeros(9, 2)},
            r"needs images= \(N = 10",
        ),
        ({"bank": torch.zeros(10, 2), "k": 3, "images": torch.zeros(10, 3)}, "decoder's 2 pixels"),
        (
            {"bank": torch.zeros(10, 2), "k": 3, "images": torch.full((10, 2), float("inf"))},
            "non-finite",
        ),
    ],
)
def test_bad_options_name_the_argument(options, message):
    with pytest.raises(ValueError, match=message):
        make_method("graph", IdentityAAE(), **options)


class ProjectingAAE(IdentityAAE):
    """encode keeps the first two of four coordinates, decode pads zeros: the reconstruction
    error of x is ‖x[2:]‖."""

    def encode(self, x):
        return x[:, :2]

    def decode(self, z):
        return torch.cat([z, torch.zeros_like(z)], 1)


def test_data_bank_drops_the_worst_reconstructed_images():
    x = torch.zeros(10, 4)
    x[:, 0] = torch.arange(10.0)
    x[:, 2] = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 5.0, 9.0])  # two badly reconstructed
    every = data_bank(ProjectingAAE(), x, 100.0)
    assert torch.equal(every, x[:, :2])
    kept = data_bank(ProjectingAAE(), x, 80.0)
    assert torch.equal(kept, x[:8, :2])
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\]"):
        data_bank(ProjectingAAE(), x, 0.0)


def test_snap_picks_chain_points_in_order_or_interpolates_a_short_chain():
    line = torch.tensor([0.0, 1.0, 1.1, 5.0, 9.0, 10.0])[:, None]
    torch.testing.assert_close(resample(line, line, 2, snap=True), line[[0, 3, 5]])
    crowded = torch.tensor([0.0, 4.9, 5.0, 5.1, 10.0])[:, None]  # nearest to 2.5 and 5 collide
    picked = resample(crowded, crowded, 3, snap=True)[:, 0]
    assert picked.diff().gt(0).all() and set(picked.tolist()) <= set(crowded[:, 0].tolist())
    short = torch.tensor([0.0, 10.0])[:, None]  # fewer points than T + 1: interpolated
    torch.testing.assert_close(resample(short, short, 4, snap=True)[:, 0], torch.arange(5.0) * 2.5)


def test_an_aae_saves_and_loads_its_latent_bank(tmp_path):
    from latentnav.aae import AAE, AAEConfig

    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(8,), disc_hidden=(8,))).eval()
    x = torch.rand(30, 6, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="latentnav train-aae` stores them"):
        make_method("graph", aae)
    aae.latent_bank = data_bank(aae, x)
    loaded = AAE.load(aae.save(tmp_path / "aae.safetensors"))
    assert torch.equal(loaded.latent_bank, aae.latent_bank) and loaded.latent_bank.shape == (30, 3)
    z_a, z_b = loaded.latent_bank[:2], loaded.latent_bank[2:4]
    by_default = make_method("graph", loaded, steps=5, k=4).path(z_a, z_b)
    given = make_method("graph", aae, bank=aae.latent_bank, steps=5, k=4).path(z_a, z_b)
    assert torch.equal(by_default.z, given.z)


def test_with_hop_the_cost_of_a_chain_of_short_hops_is_its_length():
    aae, bank = IdentityAAE(), circle(360)
    ends = torch.tensor([0.3, 0.9]) * math.pi
    z_a, z_b = (torch.stack([e.cos(), e.sin()])[None] for e in ends)
    path = make_method("graph", aae, bank=bank, steps=8, k=4, power=4.0, hop=1.0).path(z_a, z_b)
    chord = 2 * math.sin(math.radians(0.5))  # every hop: 1° of arc; h is the longest edge
    torch.testing.assert_close(path.records["cost"], torch.tensor([108 * chord]), rtol=1e-4, atol=0)
    assert (path.z.norm(dim=-1) - 1).abs().max() < 1e-3  # the direct chord costs (1.62/h)³ more
    with pytest.raises(ValueError, match=r"hop must be a quantile in \(0, 1\]"):
        make_method("graph", aae, bank=bank, hop=1.5)


def test_with_images_the_graph_is_the_k_nn_graph_of_the_images_themselves():
    aae = IdentityAAE()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(30, 2, generator=g)
    bank = torch.randn(30, 2, generator=g)  # latents unrelated to the images: only x counts
    graph = make_method("graph", aae, bank=bank, images=images, k=3, power=2.0).graph
    distance = torch.cdist(images, images)
    nearest = distance.topk(4, largest=False).indices[:, 1:]
    expected = torch.zeros(30, 30, dtype=torch.float64)
    rows = torch.arange(30)[:, None].expand_as(nearest)
    expected[rows, nearest] = distance[rows, nearest].double() ** 2 + 1e-12
    expected = torch.maximum(expected, expected.T)
    torch.testing.assert_close(
        torch.as_tensor(graph.graph.toarray()), expected, rtol=1e-5, atol=1e-6
    )


def test_the_data_graph_inverts_its_bank_and_snaps_frames_to_it():
    aae, images = IdentityAAE(), circle(360)
    ends = torch.tensor([0.3, 0.9]) * math.pi
    z_a, z_b = (torch.stack([e.cos(), e.sin()])[None] for e in ends)
    method = make_method("graph", aae, images=images, steps=16, k=4)
    assert method.config()["neighbours"] == "data" and method.config()["invert"] == 0.95
    assert method.snap  # on by default over the data: each interior frame is a bank latent
    path = method.path(z_a, z_b)
    interior = path.z[0, 1:-1]
    assert (interior[:, None] - images).norm(dim=-1).min(1).values.max() < 1e-6
    angle = torch.atan2(interior[:, 1], interior[:, 0])
    assert (angle.diff() > 0).all() and angle.min() > ends[0] and angle.max() < ends[1]


def test_auto_takes_the_geodesic_where_the_data_resolve_t_frames_and_falls_back_elsewhere():
    aae, images = IdentityAAE(), circle(360)
    ends = torch.tensor([[0.3, 0.9], [0.30, 0.33]]) * math.pi  # 108° (107 nodes), 5.4° (4)
    z_a, z_b = (torch.stack([e.cos(), e.sin()], 1) for e in ends.T)
    method = make_method("auto", aae, images=images, steps=16, fallback="slerp")
    path = method.path(z_a, z_b)
    assert path.records["from_data"].tolist() == [True, False]
    assert path.records["hops"][0] >= 15 and path.records["hops"][1] < 15
    geodesic = make_method("graph", aae, images=images, steps=16).path(z_a[:1], z_b[:1])
    assert torch.equal(path.z[0], geodesic.z[0])
    assert torch.equal(path.z[1], make_method("slerp", aae, steps=16).path(z_a[1], z_b[1]).z[0])
    assert path.config["fallback"] == {"name": "slerp", "steps": 16}
    with pytest.raises(ValueError, match="'auto' method needs images="):
        make_method("auto", aae)


def test_a_stored_data_graph_gives_the_images_geodesics_without_the_images():
    aae, images = IdentityAAE(), circle(360)
    ends = torch.tensor([[0.3, 0.9], [1.9, 1.2]]) * math.pi
    z_a, z_b = (torch.stack([e.cos(), e.sin()], 1) for e in ends.T)
    given = make_method("graph", aae, images=images, steps=16, k=4).path(z_a, z_b)
    assert not has_data_graph(aae)
    graph = attach_data_graph(aae, images, k=4)
    assert has_data_graph(aae) and aae.data_neighbours.dtype == torch.int32
    assert aae.data_neighbours.shape == aae.data_lengths.shape == (360, 4)
    stored = make_method("graph", aae, steps=16, k=4, neighbours="data")
    assert stored.config()["invert"] == "stored" and stored.snap
    assert (stored.graph.graph != graph.graph).nnz == 0  # the same edges and costs
    torch.testing.assert_close(stored.path(z_a, z_b).z, given.z)  # decode = identity: exact
    auto = make_method("auto", aae, steps=16, fallback="slerp").path(z_a, z_b)
    assert auto.records["from_data"].all() and torch.equal(auto.z, stored.path(z_a, z_b).z)


def test_the_data_graph_travels_in_the_checkpoint_and_the_navigator_uses_it(tmp_path):
    from latentnav.aae import AAE, AAEConfig
    from latentnav.navigation import DataFirst, Navigator

    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(8,), disc_hidden=(8,))).eval()
    x = torch.rand(40, 6, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="attach_data_graph"):
        make_method("graph", aae, neighbours="data")
    attach_data_graph(aae, x, k=5)
    loaded = AAE.load(aae.save(tmp_path / "aae.safetensors"))
    for name in ("data_latents", "data_neighbours", "data_lengths"):
        assert torch.equal(getattr(loaded, name), getattr(aae, name)), name
    z_a, z_b = loaded.data_latents[:3], loaded.data_latents[3:6]
    by_default = make_method("graph", loaded, steps=6, neighbours="data", k=5).path(z_a, z_b)
    from_images = make_method("graph", aae, bank=aae.data_latents, images=x, steps=6, k=5)
    assert (by_default.records["hops"] >= 0).all() and by_default.z.shape == (3, 7, 3)
    assert (from_images.graph.graph != make_method(
        "graph", loaded, neighbours="data", k=5).graph.graph).nnz == 0  # fmt: skip
    loaded.compass = loaded.discriminator  # any logit module will do for the fallback
    navigator = Navigator(loaded, steps=6, iterations=2)
    assert isinstance(navigator.method, DataFirst)
    path = navigator.path(z_a, z_b)
    assert path.z.shape == (3, 7, 3) and torch.isfinite(path.z).all()
    assert torch.equal(path.z[:, 0], z_a) and torch.equal(path.z[:, -1], z_b)


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ((torch.zeros(5, 2, dtype=torch.long),), "edges must be"),
        ((torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 2)), r"two \(N = 5, k\)"),
        ((torch.zeros(5, 2), torch.zeros(5, 2)), "neighbours must be integers"),
        ((torch.full((5, 2), 5), torch.zeros(5, 2)), r"in \[0, 5\)"),
        ((torch.zeros(5, 2, dtype=torch.long), torch.full((5, 2), -1.0)), "finite and ≥ 0"),
    ],
)
def test_bad_stored_edges_name_the_problem(edges, message):
    with pytest.raises(ValueError, match=message):
        DataGraph(IdentityAAE(), circle(5), k=2, neighbours="data", edges=edges)
    with pytest.raises(ValueError, match="edges= are a data graph"):
        DataGraph(IdentityAAE(), circle(5), k=2, edges=(torch.zeros(5, 2, dtype=torch.long),) * 2)
