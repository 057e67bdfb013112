"""The optimiser's path preconditioner (OptimizerConfig.smoothing): known matrix, known limits."""

import pytest
import torch

from latentnav.interpolation import interpolate
from latentnav.navigation import Energy, make_method
from latentnav.navigation.optimizer import OptimizerConfig, _smoother, optimize

pytest_plugins = ["_optimizer_fixtures"]


def test_the_smoother_inverts_identity_plus_alpha_times_the_second_difference():
    n, alpha = 7, 3.0
    s = _smoother(n, alpha, torch.zeros((), dtype=torch.float64))
    laplacian = 2 * torch.eye(n, dtype=torch.float64)
    for k in range(n - 1):
        laplacian[k, k + 1] = laplacian[k + 1, k] = -1
    torch.testing.assert_close((torch.eye(n, dtype=torch.float64) + alpha * laplacian) @ s,
                               torch.eye(n, dtype=torch.float64))  # fmt: skip
    torch.testing.assert_close(s, s.T)
    assert (s > 0).all()  # a positive kernel: a push on one point moves its neighbours with it
    assert s.dtype == torch.float64 and _smoother(n, alpha, torch.zeros(())).dtype == torch.float32


def test_zero_smoothing_is_the_plain_optimiser_and_tiny_smoothing_is_close_to_it(setup):
    aae, compass, a, b = setup
    paths = {
        alpha: make_method(
            "optimizer", aae, compass=compass, steps=8, iterations=15, smoothing=alpha
        )
        .path(a, b)
        .z  # fmt: skip
        for alpha in (0.0, 1e-9, 4.0)
    }
    plain = make_method("optimizer", aae, compass=compass, steps=8, iterations=15).path(a, b).z
    assert torch.equal(paths[0.0], plain)
    torch.testing.assert_close(paths[1e-9], plain, atol=1e-5, rtol=0)
    assert not torch.allclose(paths[4.0], plain, atol=1e-3)  # it does change the steps
    for z in paths.values():
        assert torch.equal(z[:, 0], a) and torch.equal(z[:, -1], b) and z.isfinite().all()


def test_a_push_on_one_point_moves_only_it_plainly_and_the_whole_interior_when_smoothed(setup):
    # A term that pulls only the middle point: its plain gradient is zero elsewhere, so the plain
    # step leaves every other point where it was; the smoothed gradient (I + αL)⁻¹∇ is a positive
    # kernel around that point, so every interior point moves, in the same direction, and the
    # endpoints stay exact.
    aae, _, a, b = setup
    start = interpolate(a, b, 8, "lerp")
    target = start[:, 4] + 1.0

    def pull(ctx):  # (B,)
        return (ctx.z[:, 4] - target).square().sum(-1)

    moved = {}
    for alpha, mode in ((0.0, "gradient"), (4.0, "gradient"), (4.0, "step")):
        config = OptimizerConfig(steps=8, iterations=1, lr=0.1, smoothing=alpha, smooth=mode)
        z, _, _ = optimize(Energy(pull), aae.decoder, start, config)
        moved[alpha, mode] = z - start
        assert torch.equal(z[:, [0, -1]], start[:, [0, -1]])
    others = [1, 2, 3, 5, 6, 7]
    plain = moved[0.0, "gradient"]
    assert torch.equal(plain[:, others], torch.zeros_like(plain[:, others]))
    assert (plain[:, 4] > 0).all()
    assert (moved[4.0, "gradient"][:, 1:-1] > 0).all()
    # On the step: Adam's step (lr at the middle point) spread by the kernel, peaked there.
    step = moved[4.0, "step"][:, 1:-1]
    assert (step > 0).all() and (step.argmax(1) == 3).all()
    assert (step[:, 3] < plain[:, 4]).all()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_smoothing_is_refused(bad):
    with pytest.raises(ValueError, match="smoothing must be a finite float ≥ 0"):
        OptimizerConfig(smoothing=bad)
    with pytest.raises(ValueError, match="smooth must be 'gradient' or 'step'"):
        OptimizerConfig(smooth="adam")


def test_compacting_evaluates_only_active_pairs_and_matches_the_masked_loop(setup):
    # Pairs converge at different iterations (a coarse tol); compacting drops them from the batch,
    # masking keeps them: the same paths and iteration counts, fewer decoded rows.
    aae, compass, a, b = setup
    rows = []

    class Counting(torch.nn.Module):
        def __init__(self, decoder):
            super().__init__()
            self.decoder = decoder

        def forward(self, z):
            rows.append(len(z))
            return self.decoder(z)

    from latentnav.navigation.energy import label_free

    energy = label_free(aae, compass, cap_weight=10.0)
    start = interpolate(a, b, 8)
    out, counts = {}, {}
    for compact in (False, True):
        rows.clear()
        config = OptimizerConfig(steps=8, iterations=40, tol=3e-3, compact=compact)
        out[compact] = optimize(energy, Counting(aae.decoder), start, config)
        counts[compact] = sum(rows)
    iterations = out[True][2]
    assert torch.equal(iterations, out[False][2]) and iterations.min() < iterations.max()
    torch.testing.assert_close(out[True][0], out[False][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[True][1], out[False][1], atol=1e-4, rtol=1e-5)
    assert counts[True] < counts[False]
    with pytest.raises(ValueError, match="compact must be None, True or False"):
        OptimizerConfig(compact="yes")
