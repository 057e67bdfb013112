"""Path metrics (DESIGN.md §7) on hand-made paths with known answers, and PathReport."""

from __future__ import annotations

import math

import pytest
import torch

from latentnav.metrics import (
    PathReport,
    band_fraction,
    class_changes,
    class_confidence,
    endpoint_error,
    frame_steps,
    latent_length,
    length_ratio,
    ood_frame_flags,
    perceptual_path_length,
    reconstruction_floor,
    region_shares,
    slerp_length,
    smoothness,
)

pytest_plugins = ["_metrics_fixtures"]


def _line(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Straight paths from a to b (both (B, ...)): (B, steps+1, ...)."""
    t = torch.linspace(0, 1, steps + 1).view(1, -1, *[1] * (a.ndim - 1))
    return a.unsqueeze(1) + t * (b - a).unsqueeze(1)


def test_straight_pixel_line_has_equal_known_steps():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 1, 6, 6, generator=g), torch.rand(3, 1, 6, 6, generator=g)
    frames = _line(a, b, 8)
    expected = (b - a).flatten(1).norm(dim=1) / 8
    steps = frame_steps(frames)
    assert steps.shape == (3, 8)
    assert torch.allclose(steps, expected[:, None].expand(3, 8), atol=1e-5)
    mean, worst = smoothness(frames)
    assert torch.allclose(mean, expected, atol=1e-5) and torch.allclose(worst, expected, atol=1e-5)


def test_a_jump_shows_in_the_max_step_only():
    frames = torch.zeros(1, 5, 1, 2, 2)
    frames[0, 3:] = 1.0  # one jump of L2 norm 2 (four pixels from 0 to 1)
    mean, worst = smoothness(frames)
    assert worst.item() == pytest.approx(2.0) and mean.item() == pytest.approx(0.5)


def test_perceptual_path_length_of_a_feature_line():
    a, b = torch.zeros(2, 4), torch.tensor([[3.0, 4.0, 0, 0], [0, 0, 1.0, 0]])
    ppl = perceptual_path_length(_line(a, b, 10), normalize=False)
    assert torch.allclose(ppl, torch.tensor([25.0, 1.0]), atol=1e-4)  # T²·(‖Δ‖/T)² = ‖Δ‖²
    still = perceptual_path_length(torch.ones(1, 5, 3))
    assert still.item() == 0.0


def test_latent_lengths_against_slerp():
    e1, e2 = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    assert slerp_length(e1, e2).item() == pytest.approx(math.pi / 2, rel=1e-4)
    assert slerp_length(2 * e1, 2 * e2).item() == pytest.approx(math.pi, rel=1e-4)
    lerp = _line(e1, e2, 16)
    assert latent_length(lerp).item() == pytest.approx(math.sqrt(2), rel=1e-5)
    assert length_ratio(lerp).item() == pytest.approx(math.sqrt(2) / (math.pi / 2), rel=1e-4)
    angles = torch.linspace(0, math.pi / 2, 65)
    arc = torch.stack([angles.cos(), angles.sin(), torch.zeros(65)], -1)[None]
    assert length_ratio(arc).item() == pytest.approx(1.0, abs=1e-3)
    assert length_ratio(arc[:, :33], target=e2).item() == pytest.approx(0.5, abs=1e-3)


def test_the_length_ratio_of_the_librarys_own_slerp_is_one():
    # One SLERP (interpolation.slerp, norm-interpolating) for the paths and the metric alike:
    # pairs of different norms used to read 1.01–1.21 against the metric's own SLERP.
    from latentnav.interpolation import interpolate

    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 8, generator=g)
    b = torch.randn(64, 8, generator=g) * torch.rand(64, 1, generator=g).mul(3).add(0.2)
    assert (a.norm(dim=-1) / b.norm(dim=-1)).log().abs().max() > 1  # norms really differ
    ratio = length_ratio(interpolate(a, b, 32, "slerp"))
    torch.testing.assert_close(ratio, torch.ones(64), atol=1e-3, rtol=0)
    assert (ratio <= 1 + 1e-6).all()  # a chord polyline is never longer than its curve


def test_endpoint_error():
    last, target = torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    assert torch.allclose(endpoint_error(last, target), torch.tensor([5.0, 0.0]))
    with pytest.raises(ValueError, match="target"):
        endpoint_error(last, target[:1])


def test_band_fraction_and_regions():
    scores = torch.tensor([[0.5, 0.55, 0.7, 0.9, 0.1], [0.5, 0.5, 0.5, 0.5, 0.5]])
    assert torch.allclose(band_fraction(scores, 0.1), torch.tensor([0.4, 1.0], dtype=torch.float64))
    shares = region_shares(scores, (0.2, 0.8))
    assert shares["hole"].tolist() == [0.2, 0.0]
    assert shares["outlier"].tolist() == [0.2, 0.0]
    assert shares["equilibrium"].tolist() == pytest.approx([0.6, 1.0])


def test_class_changes_and_confidence():
    classes = torch.tensor([[3, 3, 5, 5, 3], [1, 1, 1, 7, 7], [2, 2, 2, 2, 2]])
    assert class_changes(classes).tolist() == [2, 1, 0]
    probs = torch.nn.functional.one_hot(classes, 10).float() * 0.9 + 0.01
    assert class_changes(probs).tolist() == [2, 1, 0]
    assert torch.allclose(class_confidence(probs), torch.full((3, 5), 0.91))


def test_report_without_models_tables_and_compares():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 1, 6, 6, generator=g), torch.rand(4, 1, 6, 6, generator=g)
    za, zb = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    scores = torch.full((4, 9), 0.5)
    lerp = PathReport.from_paths(
        _line(a, b, 8), latents=_line(za, zb, 8), scores=scores, target_latents=zb, target_images=b
    )
    assert lerp.n_paths == 4 and lerp.n_points == 9
    assert lerp.length_ratio < 1 and lerp.endpoint_error == pytest.approx(0, abs=1e-6)
    assert lerp.endpoint_pixel_error == pytest.approx(0, abs=1e-6)
    assert lerp.band_fraction == 1.0 and lerp.regions["equilibrium"] == 1.0
    assert lerp.ppl is None and lerp.ood_rate == {}
    jumpy = PathReport.from_paths(_line(a, b, 8)[:, torch.tensor([0, 0, 0, 0, 8, 8, 8, 8, 8])])
    table = PathReport.compare({"lerp": lerp, "jumpy": jumpy})
    assert "lerp" in table and "jumpy" in table and "step L2 max" in table
    assert "—" in table  # jumpy has no latents
    data = PathReport.compare_dict({"lerp": lerp, "jumpy": jumpy})
    assert data["jumpy"]["step L2 max"] > data["lerp"]["step L2 max"]
    assert "length / SLERP" in str(lerp)


def test_report_with_classifier_and_detector(reference, detection):
    test = reference.test
    ones, sevens = test.images[test.labels == 1][:6], test.images[test.labels == 7][:6]
    frames = _line(ones, sevens, 8)
    flags = ood_frame_flags(detection.detector, frames)
    assert flags["union"].shape == (6, 9) and flags["union"].dtype == torch.bool
    floor = reconstruction_floor(detection.detector, lambda x: x, detection.held_out[:300])
    assert floor["union"] <= 0.1
    report = PathReport.from_paths(frames, detector=detection.detector, floor=floor)
    assert set(report.ood_rate) == set(floor)
    assert 0 <= report.ood_rate["union"] <= 1 and report.ppl > 0
    assert 0 <= report.at_most_one_change <= 1 and 0.1 < report.confidence_mean <= 1
    noise = PathReport.from_paths(torch.rand(2, 5, 1, 28, 28), detector=detection.detector)
    assert noise.ood_rate["union"] == 1.0 and noise.ood_paths == 1.0
    assert "floor: union" in str(report)


def test_bad_paths_raise_naming_the_argument():
    with pytest.raises(ValueError, match="frames"):
        frame_steps(torch.rand(3, 1, 6, 6))
    with pytest.raises(ValueError, match="latents"):
        latent_length(torch.rand(3, 1, 2))
    with pytest.raises(ValueError, match="scores"):
        band_fraction(torch.rand(3), 0.1)
