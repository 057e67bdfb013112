"""OOD-frame detectors (DESIGN.md §7, issue 3): real ≈ 1% each, garbage flagged far more."""

from __future__ import annotations

import pytest
import torch

from latentnav.metrics import DETECTORS, OODConfig, OODDetector, ood_detector

pytest_plugins = ["_metrics_fixtures"]


def test_each_detector_flags_about_one_percent_of_held_out_real_images(detection):
    rates = detection.detector.flag_rates(detection.held_out)
    assert set(rates) == {*DETECTORS, "union"}
    for name in DETECTORS:
        assert rates[name] <= 0.03, (name, rates)
    assert max(rates[n] for n in DETECTORS) <= rates["union"] <= 0.08, rates


def test_thresholds_are_the_99th_percentile_on_the_fitting_images(detection):
    rates = detection.detector.flag_rates(detection.fit_images)
    for name in DETECTORS:
        assert rates[name] == pytest.approx(0.01, abs=0.002), (name, rates)


def test_pure_noise_is_flagged(detection):
    noise = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert detection.detector.flag_rates(noise)["union"] >= 0.99


def test_faded_digits_and_blends_are_flagged_far_more_than_real(detection):
    real = detection.held_out[:500]
    base = detection.detector.flag_rates(real)["union"]
    faded = detection.detector.flag_rates(real * 0.4)["union"]
    blends = detection.detector.flag_rates(0.5 * real + 0.5 * real.roll(1, 0))["union"]
    assert faded >= max(0.5, 5 * base), (faded, base)
    assert blends >= max(0.15, 3 * base), (blends, base)


def test_empty_and_flat_frames_are_flagged(detection):
    flags = detection.detector.flags(torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28)]))
    assert flags["union"].all()
    assert flags["relative"][0]  # all black: near thin digits in pixels, infinitely far relatively


def test_banks_and_thresholds_are_cached(reference, detection):
    files = list((reference.cache_dir / "ood").iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    again = ood_detector(
        reference.classifier,
        reference.train.images,
        detection.fit_images,
        OODConfig(bank_size=4000, seed=0),
        reference.cache_dir,
    )
    assert again.thresholds == detection.detector.thresholds
    assert torch.equal(again.banks["pixel"], detection.detector.banks["pixel"])
    assert len(list((reference.cache_dir / "ood").iterdir())) == 1
    loaded = OODDetector.load(files[0], reference.classifier)
    assert loaded.thresholds == detection.detector.thresholds


def test_bad_frames_raise(detection):
    with pytest.raises(ValueError, match="x"):
        detection.detector.flags(torch.rand(2, 1, 14, 14))
    with pytest.raises(ValueError, match="quantile"):
        OODConfig(quantile=99)
