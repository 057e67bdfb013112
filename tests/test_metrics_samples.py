"""Sample metrics (DESIGN.md §7): FID, inception-style score, PRDC, Parzen, PSNR/SSIM."""

from __future__ import annotations

import math

import pytest
import torch

from latentnav.metrics import (
    FeatureExtractor,
    classifier_accuracy,
    fid,
    inception_score,
    parzen_evaluate,
    parzen_log_likelihood,
    precision_recall,
    psnr,
    ssim,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _exact_gaussian_set(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    """n points whose sample mean and (unbiased) sample covariance are exactly mean and cov."""
    z = torch.randn(n, mean.numel(), generator=_gen(seed), dtype=torch.float64)
    z = z - z.mean(0)
    white = torch.linalg.solve_triangular(
        torch.linalg.cholesky(z.T @ z / (n - 1)), z.T, upper=False
    ).T
    return white @ torch.linalg.cholesky(cov).T + mean


def test_fid_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 8, generator=_gen())
    assert abs(fid(x, x)) < 1e-3


def test_fid_matches_the_two_gaussian_closed_form():
    # Σ1 = R diag(a) Rᵀ, Σ2 = R diag(b) Rᵀ commute: Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) = Σ(√a − √b)².
    d = 6
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=_gen(1), dtype=torch.float64))
    a = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5, 0.8], dtype=torch.float64)
    b = torch.tensor([2.0, 0.5, 0.5, 1.0, 4.0, 0.2], dtype=torch.float64)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.linspace(-1, 1, d, dtype=torch.float64)
    x = _exact_gaussian_set(400, mu1, rotation @ torch.diag(a) @ rotation.T, 2)
    y = _exact_gaussian_set(300, mu2, rotation @ torch.diag(b) @ rotation.T, 3)
    expected = (mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    assert fid(x.float(), y.float()) == pytest.approx(float(expected), rel=1e-3)


def test_fid_with_a_plugged_in_extractor_on_images():
    extractor = FeatureExtractor(lambda x: torch.nn.functional.avg_pool2d(x, 4).flatten(1), 49)
    real = torch.rand(200, 1, 28, 28, generator=_gen()) * 0.5
    other = torch.rand(200, 1, 28, 28, generator=_gen(1)) * 0.5
    noise = torch.rand(200, 1, 28, 28, generator=_gen(2))
    assert abs(fid(real, real, extractor)) < 1e-3
    assert fid(real, noise, extractor) > 10 * fid(real, other, extractor)


def test_inception_score_known_values():
    onehot = torch.eye(5).repeat(20, 1)  # confident and balanced: IS = number of classes
    mean, std = inception_score(onehot, splits=4)
    assert mean == pytest.approx(5.0, rel=1e-6) and std < 1e-6
    assert inception_score(torch.full((40, 5), 0.2), splits=2)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="probs"):
        inception_score(torch.rand(10, 5) + 1)


def test_precision_recall_of_a_set_against_itself_is_one():
    x = torch.randn(300, 5, generator=_gen())
    for k, prdc in precision_recall(x, x).items():
        assert k in (3, 5)
        assert prdc.precision == 1.0 and prdc.recall == 1.0 and prdc.coverage == 1.0
        assert prdc.density >= 1.0


def test_precision_recall_of_disjoint_sets_is_zero():
    x = torch.randn(200, 3, generator=_gen())
    result = precision_recall(x, x + 100.0, ks=(3,))[3]
    assert (result.precision, result.recall, result.density, result.coverage) == (0, 0, 0, 0)


def test_parzen_single_sample_is_the_gaussian_log_density():
    sample = torch.tensor([[0.5, -1.0, 2.0]])
    x = torch.randn(7, 3, generator=_gen())
    sigma = 0.7
    expected = torch.distributions.Normal(sample, sigma).log_prob(x).sum(1)
    got = parzen_log_likelihood(sample, x, sigma)
    assert got.shape == (7,)
    assert torch.allclose(got.float(), expected, atol=1e-5)
    both = parzen_log_likelihood(sample, x, [sigma, 2 * sigma], chunk=2)
    assert both.shape == (2, 7) and torch.allclose(both[0].float(), expected, atol=1e-5)


def test_parzen_chunking_does_not_change_the_result():
    samples, test = torch.rand(50, 1, 4, 4, generator=_gen()), torch.rand(33, 16)
    full = parzen_log_likelihood(samples, test, 0.3, chunk=1000)
    assert torch.allclose(parzen_log_likelihood(samples, test, 0.3, chunk=4), full)


def test_parzen_sigma_selection_picks_the_generating_sigma():
    centres = torch.randn(5, 10, generator=_gen()) * 20  # far apart: one kernel per point

    def around(n: int, seed: int) -> torch.Tensor:
        idx = torch.arange(n) % 5
        return centres[idx] + 0.3 * torch.randn(n, 10, generator=_gen(seed))

    grid = [0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0]
    result = parzen_evaluate(centres, around(1000, 1), around(500, 2), grid, progress=False)
    assert result.sigma == 0.3
    assert result.validation[3] == max(result.validation)
    expected = torch.distributions.Normal(0.0, 0.3).log_prob(torch.tensor(0.0)) * 10 - 0.5 * 10
    assert result.mean == pytest.approx(float(expected - math.log(5)), abs=0.5)
    assert 0 < result.stderr < 0.5
    assert "σ = 0.3" in str(result)


def test_classifier_accuracy_psnr_ssim():
    images = torch.rand(6, 1, 8, 8, generator=_gen())
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    always_one = lambda x: torch.tensor([[0.0, 1.0]]).expand(x.shape[0], 2)  # noqa: E731
    assert classifier_accuracy(always_one, images, labels) == 0.5
    x = torch.full((4, 1, 16, 16), 0.5)
    assert torch.allclose(psnr(x + 0.1, x), torch.full((4,), 20.0), atol=1e-3)
    assert torch.isinf(psnr(x, x)).all()
    real = torch.rand(4, 1, 16, 16, generator=_gen())
    assert torch.allclose(ssim(real, real), torch.ones(4), atol=1e-5)
    assert (ssim(torch.rand(4, 1, 16, 16, generator=_gen(1)), real) < 0.5).all()
    with pytest.raises(ValueError, match="target"):
        psnr(x, x[:, :, :8])
