"""The optimiser coarse to fine (OptimizerConfig.coarse): resampling, point terms, records."""

import pytest
import torch

from latentnav.interpolation import _slerp, interpolate
from latentnav.navigation import PathContext, make_method
from latentnav.navigation.energy import label_free
from latentnav.navigation.optimizer import OptimizerConfig, coarse_steps, optimize, resample

pytest_plugins = ["_optimizer_fixtures"]


def test_resample_keeps_the_nodes_and_slerps_each_segment():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 5, 4, generator=g)
    fine = resample(z, 12)
    assert fine.shape == (3, 13, 4) and torch.equal(fine[:, ::3], z)
    for k in range(4):
        torch.testing.assert_close(fine[:, 3 * k : 3 * k + 4], interpolate(z[:, k], z[:, k + 1], 3))
    odd = resample(z.double()[:1], 7)  # T not a multiple of T₀: each point on its segment
    assert odd.shape == (1, 8, 4) and odd.dtype == torch.float64
    for j in range(8):
        k, t = min(4 * j // 7, 3), (4 * j % 7) / 7 if 4 * j // 7 < 4 else 1.0
        expected = _slerp(z.double()[:1, k], z.double()[:1, k + 1], t)
        torch.testing.assert_close(odd[:, j], expected)


def test_the_coarse_size_divides_t_or_the_optimiser_stays_plain():
    assert [coarse_steps(t, 4) for t in (2, 3, 5, 8, 10, 12, 31, 32)] == [
        None, None, None, 2, 2, 3, None, 8
    ]  # fmt: skip
    assert coarse_steps(32, 1) is None and coarse_steps(32, 2) == 16


def test_point_scale_multiplies_exactly_the_point_terms(setup):
    aae, compass, a, b = setup
    energy = label_free(aae, compass, cap_weight=10.0)
    z = interpolate(a, b, 8) + 0.1
    z[:, 0], z[:, -1] = a, b
    context = PathContext(z, aae.decoder)
    scaled = energy.with_point_scale(4.0)
    with torch.no_grad():
        points = sum(t(context) for t in energy.terms if hasattr(t, "per_point"))
        torch.testing.assert_close(scaled(context), energy(context) + 3 * points)
        torch.testing.assert_close(scaled.per_point(context), 4 * energy.per_point(context))
    kinds = [t.get("point_scale") for t in scaled.config()]
    assert kinds == [None, None, None, 4.0, 4.0]  # smoothness, max jump, jump cap; density, cycle
    assert scaled.modules() == energy.modules()


def test_the_coarse_optimiser_returns_t_steps_with_the_records_of_that_path(setup):
    aae, compass, a, b = setup
    seen = []
    method = make_method("optimizer", aae, compass=compass, steps=8, iterations=10, coarse=4)
    path = method.path(a, b, callback=lambda s: seen.append(s["z"].shape))
    assert path.z.shape == (5, 9, 3) and torch.equal(path.z[:, 0], a)
    assert torch.equal(path.z[:, -1], b) and path.z.isfinite().all()
    assert seen == [(5, 3, 3)] * 10  # the callback sees the T₀ = 2 coarse path
    assert path.records["iterations"].shape == (5,) and path.records["d_score"].shape == (5, 9)
    # the coarse run is the optimiser on the T₀ = 2 path with the point terms × 4, nodes kept;
    # its energy and iterations are the records
    settings, start = OptimizerConfig(steps=2, iterations=10), interpolate(a, b, 2)
    scaled = method.energy.with_point_scale(4.0)
    coarse, energy, iterations = optimize(scaled, aae.decoder, start, settings)
    torch.testing.assert_close(path.z[:, ::4], coarse, rtol=0, atol=0)
    torch.testing.assert_close(path.records["energy"], energy, rtol=0, atol=0)
    assert torch.equal(path.records["iterations"], iterations)
    with torch.no_grad():  # the same integral with fewer points: not the T-step path's energy
        fine = method.energy(PathContext(path.z, aae.decoder))
    assert not torch.allclose(path.records["energy"], fine)
    unscaled, _, _ = optimize(method.energy, aae.decoder, start, settings)
    assert not torch.equal(unscaled, coarse)  # the scale changes the run (Adam: a little)
    plain = make_method("optimizer", aae, compass=compass, steps=8, iterations=10).path(a, b)
    assert not torch.allclose(plain.z, path.z)
    # where no coarse size divides T (here T = 5) it is the plain optimiser bit for bit
    same = make_method("optimizer", aae, compass=compass, steps=5, iterations=10, coarse=4)
    ref = make_method("optimizer", aae, compass=compass, steps=5, iterations=10).path(a, b)
    assert torch.equal(same.path(a, b).z, ref.z)


def test_the_coarse_option_is_checked(setup):
    aae, compass, a, b = setup
    for bad in (0, 1.5, -2):
        with pytest.raises(ValueError, match="coarse must be an int ≥ 1"):
            OptimizerConfig(coarse=bad)
    method = make_method("optimizer", aae, compass=compass, steps=8, coarse=2, init="stepwise")
    with pytest.raises(ValueError, match="coarse > 1 starts from SLERP"):
        method.path(a, b)
    with pytest.raises(TypeError):
        OptimizerConfig(8)  # keyword-only: a new field can never shift a positional argument


def test_refine_continues_at_t_from_the_resampled_coarse_path(setup):
    aae, compass, a, b = setup
    seen = []
    fields = {"compass": compass, "steps": 8, "iterations": 10, "coarse": 4}
    method = make_method("optimizer", aae, refine=6, **fields)
    path = method.path(a, b, callback=lambda s: seen.append(tuple(s["z"].shape)))
    assert seen == [(5, 3, 3)] * 10 + [(5, 9, 3)] * 6  # the coarse iterations, then the fine
    coarse = make_method("optimizer", aae, **fields).path(a, b)  # refine = 0: resampled only
    settings = OptimizerConfig(steps=8, iterations=6)
    fine, energy, iterations = optimize(method.energy, aae.decoder, coarse.z, settings)
    torch.testing.assert_close(path.z, fine, rtol=0, atol=0)
    torch.testing.assert_close(path.records["energy"], energy)
    assert torch.equal(path.records["iterations"], coarse.records["iterations"] + iterations)
    assert torch.equal(path.z[:, 0], a) and torch.equal(path.z[:, -1], b)
    assert not torch.equal(path.z, coarse.z)
    for bad in (-1, 2.0):
        with pytest.raises(ValueError, match="refine must be an int ≥ 0"):
            OptimizerConfig(refine=bad)
