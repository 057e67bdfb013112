"""Equal decoded arc length (equal_arc) and the optimiser that keeps its points there
(OptimizerConfig.reparametrize, the string method)."""

import pytest
import torch

from latentnav.interpolation import interpolate
from latentnav.navigation import PathContext, make_method
from latentnav.navigation.graph import resample as resample_one
from latentnav.navigation.optimizer import OptimizerConfig, equal_arc

pytest_plugins = ["_optimizer_fixtures"]


def test_equal_arc_on_a_known_polyline():
    z = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 2.0], [4.0, 2.0]]])  # lengths 1, 2, 3
    out = equal_arc(z, torch.tensor([[1.0, 2.0, 3.0]]), 3)  # arc 0, 2, 4, 6
    expected = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [4.0, 2.0]]])
    torch.testing.assert_close(out, expected)
    # other lengths than the latent ones: decoded arc, linear in latent space on each segment
    out = equal_arc(z, torch.tensor([[3.0, 1.0, 2.0]]), 2)  # arc 0, 3, 6: the second node
    torch.testing.assert_close(out, z[:, [0, 1, 3]])


def _equal_arc_by_hand(z, lengths, steps):
    """One pair, loops: the point at arc k·L/T on the last segment that starts at or before it."""
    cum = [0.0]
    for length in lengths.tolist():
        cum.append(cum[-1] + length)
    out = []
    for k in range(steps + 1):
        t = cum[-1] * k / steps
        j = max(i for i in range(len(cum) - 1) if cum[i] <= t)
        alpha = min(max((t - cum[j]) / max(float(lengths[j]), 1e-12), 0.0), 1.0)
        out.append(z[j] + alpha * (z[j + 1] - z[j]))
    return torch.stack(out)


def test_equal_arc_matches_a_loop_pair_by_pair_and_keeps_the_ends():
    g = torch.Generator().manual_seed(0)
    z, frames = torch.randn(4, 9, 3, generator=g), torch.randn(4, 9, 5, generator=g)
    frames[1, 3] = frames[1, 2]  # a zero-length segment
    lengths = frames.diff(dim=1).norm(dim=-1)
    assert lengths[1, 2] == 0
    out = equal_arc(z, lengths, 6)
    assert out.shape == (4, 7, 3)
    assert torch.equal(out[:, 0], z[:, 0]) and torch.equal(out[:, -1], z[:, -1])
    for i in range(4):
        torch.testing.assert_close(out[i], _equal_arc_by_hand(z[i], lengths[i], 6))
    # the graph's resampler is the same map, pair by pair
    torch.testing.assert_close(resample_one(z[0], frames[0], 6), out[0])


def test_the_reparametrised_optimiser_returns_evenly_spaced_frames(setup):
    aae, compass, a, b = setup
    fields = {"compass": compass, "steps": 8, "iterations": 30}
    plain = make_method("optimizer", aae, **fields).path(a, b)
    even = make_method("optimizer", aae, reparametrize=1, **fields).path(a, b)
    assert torch.equal(even.z[:, 0], a) and torch.equal(even.z[:, -1], b)
    assert even.z.isfinite().all()

    def spread(path):  # largest over smallest decoded step, per pair
        with torch.no_grad():
            steps = PathContext(path.z, aae.decoder).squared_steps.sqrt()
        return steps.amax(1) / steps.amin(1)

    assert (spread(even) < spread(plain)).all()
    never = make_method("optimizer", aae, reparametrize=0, **fields).path(a, b)
    assert torch.equal(never.z, plain.z)  # 0: the plain optimiser bit for bit
    start = interpolate(a, b, 8)
    assert not torch.equal(even.z, start)
    for bad in (-1, 0.5):
        with pytest.raises(ValueError, match="reparametrize must be an int ≥ 0"):
            OptimizerConfig(reparametrize=bad)
