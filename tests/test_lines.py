"""The lines data set and its exact-manifold judge (DESIGN.md §7, "Exact manifold")."""

import json
import math

import pytest
import torch

from latentnav.cli import main
from latentnav.data import (
    ACCEPTED_SPECS,
    LinesConfig,
    LinesData,
    dataset_splits,
    load_dataset,
    make_lines,
    parse_lines_spec,
    render_lines,
)
from latentnav.metrics import (
    LineManifold,
    ManifoldReport,
    acai_smoothness,
    arc_steps,
    monotone,
    wrap_angle,
)

T = 32
DEG = math.pi / 180


@pytest.fixture(scope="module")
def manifold():
    return LineManifold(size=32, grid=3600)


def _path(angles: torch.Tensor) -> torch.Tensor:
    """Angles (B, T+1) → ideal frames (B, T+1, 1, 32, 32)."""
    b, n = angles.shape
    return render_lines(angles.flatten(), 32).view(b, n, 1, 32, 32)


def _noisy(x: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


# --- data -----------------------------------------------------------------------------------


def test_data_is_deterministic_in_range_and_seeded():
    x1, a1 = make_lines(64, size=16, seed=3)
    x2, a2 = make_lines(64, size=16, seed=3)
    x3, a3 = make_lines(64, size=16, seed=4)
    assert torch.equal(x1, x2) and torch.equal(a1, a2)
    assert not torch.equal(a1, a3)
    assert x1.shape == (64, 1, 16, 16) and x1.dtype == torch.float32 and a1.shape == (64,)
    assert x1.min() >= 0 and x1.max() <= 1 and x1.max() == 1
    assert ((a1 >= 0) & (a1 < 2 * math.pi)).all()


def test_angle_convention_and_anti_aliasing():
    x = render_lines(torch.tensor([0.0, math.pi / 2, 0.3]), size=32)[:, 0]
    right, left = x[0, 15:17, 17:].sum(), x[0, 15:17, :15].sum()
    up, down = x[1, :15, 15:17].sum(), x[1, 17:, 15:17].sum()
    assert right > 10 and left == 0  # θ = 0 points right
    assert up > 10 and down == 0  # θ = π/2 points up (rows grow downwards)
    grey = x[2][(x[2] > 0) & (x[2] < 1)]
    assert grey.numel() > 10  # an oblique line has intermediate (anti-aliased) values


def test_load_dataset_lines_splits_labels_and_angles():
    spec = "lines:size=16,train=120,test=40,bins=4,seed=2"
    assert dataset_splits(spec) == ("train", "test")
    train, test = load_dataset(spec, "train"), load_dataset(spec, "test")
    assert isinstance(train, LinesData) and len(train) == 120 and len(test) == 40
    assert train.image_shape == (1, 16, 16)
    assert torch.equal(train.labels, (train.angles / (math.pi / 2)).floor().long())
    assert train.classes == ["0-90°", "90-180°", "180-270°", "270-360°"]
    again = load_dataset("lines:size=16,train=120,test=7,bins=4,seed=2", "train")
    assert torch.equal(again.images, train.images)  # train does not depend on the test count
    assert not torch.equal(test.angles[:40], train.angles[:40])
    sub = train.subset(torch.tensor([5, 2]))
    assert isinstance(sub, LinesData) and torch.equal(sub.angles, train.angles[[5, 2]])
    default = load_dataset("lines", "test")
    assert default.images.shape == (2000, 1, 32, 32) and "lines" in ACCEPTED_SPECS


def test_cli_trains_on_lines(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train-aae", "--data", "lines:size=16,train=200,test=50", "--latent-dim", "2"]
    args += ["--compass-steps", "0"]
    args += ["--hidden", "32", "--disc-hidden", "16", "--epochs", "1", "--batch-size", "50"]
    args += ["--out", str(out), "--accelerator", "cpu", "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["data"].startswith("lines")
    assert metrics["config"]["model"]["image_shape"] == [1, 16, 16]
    assert metrics["test"]["n_images"] == 50
    assert (out / "aae.safetensors").is_file()
    # The checkpoint carries the encoded training images: the graph navigator needs nothing else.
    from latentnav.aae import AAE
    from latentnav.navigation import Navigator

    aae = AAE.load(out / "aae.safetensors")
    train = load_dataset("lines:size=16,train=200,test=50", "train")
    with torch.no_grad():
        every = aae.encode(train.images)
    assert 100 <= len(aae.latent_bank) <= 200 and aae.latent_bank.shape[1] == 2
    assert torch.cdist(aae.latent_bank, every).min(1).values.max() < 1e-4
    path = Navigator(aae, "graph", steps=8, k=3).path(every[:3], every[3:6])
    assert path.z.shape == (3, 9, 2) and torch.equal(path.z[:, -1], every[3:6])
    # ... and the images' own k-NN graph, so the data-first default needs no images either.
    assert aae.data_latents.shape == aae.latent_bank.shape
    assert aae.data_neighbours.shape == (len(aae.latent_bank), 20)
    path = Navigator(aae, "auto", steps=8, fallback="slerp").path(every[:3], every[3:6])
    assert path.config["graph"]["invert"] == "stored" and path.records["from_data"].shape == (3,)
    # ... and label-free classes of that graph: the default energy's class term.
    sizes = metrics["compass"]["cluster_sizes"]
    assert aae.cluster_classifier.num_classes == len(sizes) == 10
    assert sum(sizes) == len(aae.data_latents)


# --- projection and threshold ---------------------------------------------------------------


def test_ideal_images_project_to_their_angle(manifold):
    theta, distance = manifold.project(manifold.bank.view(-1, 1, 32, 32))
    assert torch.equal(theta, manifold.angles) and distance.max() < 1e-6
    x, angles = make_lines(500, seed=11)
    theta, distance = manifold.project(x)
    assert wrap_angle(theta - angles).abs().max() <= manifold.step
    assert distance.max() < 0.1  # a sub-grid shift of the line moves few pixels slightly


def test_chunked_projection_equals_one_batch(manifold):
    x = _noisy(make_lines(37, seed=1)[0], 0.05, seed=0)
    small = LineManifold(size=32, grid=3600, chunk=5)
    t1, d1 = manifold.project(x)
    t2, d2 = small.project(x)
    assert torch.equal(t1, t2) and torch.allclose(d1, d2)


def test_blend_is_off_manifold_above_noise_threshold(manifold):
    x, _ = make_lines(400, seed=5)
    threshold = manifold.threshold_from(_noisy(x, 0.02, seed=1), percentile=99)
    angles = torch.tensor([0.4, 0.4 + math.pi / 2, 2.0, 2.0 + math.pi / 2])
    ideal = render_lines(angles, 32)
    blends = torch.stack([0.5 * (ideal[0] + ideal[1]), 0.5 * (ideal[2] + ideal[3])])
    _, d_blend = manifold.project(blends)
    _, d_noise = manifold.project(_noisy(make_lines(200, seed=6)[0], 0.02, seed=2))
    assert (d_blend > threshold).all()
    assert (d_noise > threshold).double().mean() < 0.05  # fresh noisy lines mostly pass


# --- path metrics on constructed paths ------------------------------------------------------


def _even(start_deg: float, arc_deg: float, b: int = 1) -> torch.Tensor:
    k = torch.arange(T + 1, dtype=torch.float64) / T
    return ((start_deg + arc_deg * k) * DEG).expand(b, -1)


def test_even_rotation_is_smooth_monotone_and_on_manifold(manifold):
    # grid-aligned angles (3° steps = 30 grid steps) and a generic arc, both directions
    angles = torch.cat([_even(10, 96), _even(250, -96), _even(33.3333, 71.77)])
    frames = _path(angles)
    threshold = manifold.threshold_from(_noisy(make_lines(300, seed=9)[0], 0.02, seed=3))
    report = ManifoldReport.from_paths(manifold, frames, threshold)
    s = report.per_path["smoothness"]
    assert s[:2].abs().max() < 1e-3
    arc = 71.77 * DEG
    assert s[2].abs() <= 2 * manifold.step / arc + 1e-9  # two grid steps of estimation error
    assert report.per_path["monotone"].all() and report.monotone == 1.0
    assert report.off_manifold == 0.0
    assert report.largest_step_deg == pytest.approx((96 + 96 + 71.77) / 3 / T, abs=0.1)


def test_stay_then_jump_scores_one_minus_one_over_t(manifold):
    a, b = 20 * DEG, 110 * DEG
    angles = torch.where(torch.arange(T + 1) <= T // 2, a, b).double()[None]
    theta, _ = manifold.coordinates(_path(angles))
    assert acai_smoothness(theta).item() == pytest.approx(1 - 1 / T, abs=1e-6)
    assert monotone(theta, 2 * manifold.step).item()  # a jump is monotone, just not smooth


def test_long_way_round_and_winding_are_not_monotone(manifold):
    long_way = _even(0, -270)  # from 0° to 90° clockwise: the longer arc
    winding = _even(0, 90 + 360)  # counter-clockwise, once round too many
    theta, _ = manifold.coordinates(_path(torch.cat([long_way, winding])))
    assert not monotone(theta, 2 * manifold.step).any()
    # detours score above 0: steps of 270°/T and 450°/T against the 90° arc, minus 1/T
    expected = torch.tensor([270 / (T * 90) - 1 / T, 450 / (T * 90) - 1 / T], dtype=torch.float64)
    assert torch.allclose(acai_smoothness(theta), expected, atol=2 * manifold.step / (math.pi / 2))


def test_back_step_tolerance(manifold):
    theta = _even(0, 90).clone()
    small, large = theta.clone(), theta.clone()
    small[0, 10] = theta[0, 9] - 1.5 * manifold.step
    large[0, 10] = theta[0, 9] - 5 * DEG
    assert monotone(small, 2 * manifold.step).item()
    assert not monotone(large, 2 * manifold.step).item()
    progress, arc = arc_steps(theta)
    assert progress.shape == (1, T) and arc.item() == pytest.approx(math.pi / 2)


def test_targets_define_the_arc(manifold):
    # a path that never leaves θ_a, against θ_b = θ_a + 60°: vacuously monotone, smoothness
    # −1/T, and the endpoint error of the report shows that it never arrives
    theta = torch.full((1, T + 1), 0.5, dtype=torch.float64)
    targets = (torch.tensor([0.5]), torch.tensor([0.5 + 60 * DEG]))
    assert monotone(theta, 2 * manifold.step, targets).item()
    assert acai_smoothness(theta, targets).item() == pytest.approx(-1 / T)
    still = _path(torch.full((1, T + 1), 0.5, dtype=torch.float64))
    r = ManifoldReport.from_paths(manifold, still, threshold=1.0, targets=targets)
    assert r.endpoint_error_deg == pytest.approx(30.0, abs=0.1)  # (0° + 60°) / 2
    even = _even(40, 60)
    frames = _path(even)
    targets = (even[:, 0] + 1 * DEG, even[:, -1] - 1 * DEG)  # endpoints reconstructed 1° off
    r = ManifoldReport.from_paths(manifold, frames, threshold=1.0, targets=targets)
    assert r.monotone == 1.0
    assert r.smoothness == pytest.approx((60 / T) / 58 - 1 / T, abs=1e-3)
    assert r.endpoint_error_deg == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError, match="targets must be"):
        monotone(theta, 0.01, (torch.zeros(2), torch.zeros(2)))


def test_compare_table_lists_methods(manifold):
    frames = _path(_even(0, 90, b=2))
    threshold = manifold.threshold_from(_noisy(make_lines(100, seed=1)[0], 0.02, seed=1))
    r = ManifoldReport.from_paths(manifold, frames, threshold)
    table = ManifoldReport.compare({"even": r, "again": r})
    assert "even" in table and "ACAI smoothness" in table and "monotone paths" in table
    assert r.to_dict()["paths"] == 2 and "off-manifold" in r.table()


# --- bad inputs -----------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(manifold):
    with pytest.raises(ValueError, match="angles must be a tensor of shape"):
        render_lines(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="size must be an int ≥ 8"):
        render_lines(torch.zeros(2), size=4)
    with pytest.raises(ValueError, match="n must be an int ≥ 1"):
        make_lines(0)
    with pytest.raises(ValueError, match="width must be in"):
        LinesConfig(width=-1.0)
    with pytest.raises(ValueError, match="key=value with key in"):
        parse_lines_spec("lines:colour=3")
    with pytest.raises(ValueError, match="expected int"):
        load_dataset("lines:size=big")
    with pytest.raises(ValueError, match=r"frames must have shape \(B, 1, 32, 32\)"):
        manifold.project(torch.zeros(3, 1, 16, 16))
    with pytest.raises(ValueError, match="percentile must be in"):
        manifold.threshold_from(torch.zeros(3, 1, 32, 32), percentile=0)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        ManifoldReport.from_paths(manifold, torch.zeros(1, 3, 1, 32, 32), threshold=0.0)
    with pytest.raises(ValueError, match="theta must be a tensor of shape"):
        monotone(torch.zeros(4), 0.01)
    with pytest.raises(ValueError, match="tolerance must be ≥ 0"):
        monotone(torch.zeros(1, 4), -1.0)
    with pytest.raises(ValueError, match="grid must be an int ≥ 8"):
        LineManifold(grid=2)
