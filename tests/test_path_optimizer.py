"""Path-level optimiser: known answers on a linear decoder and a quadratic compass."""

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from latentnav.interpolation import interpolate
from latentnav.path_optimizer import (
    PathOptimizerConfig,
    cycle_threshold,
    log_q_threshold,
    optimize_paths,
    path_energy,
)
from latentnav.priors import StandardNormal


class LinearAAE(nn.Module):
    def __init__(self, dim=3):
        super().__init__()
        self.latent_dim = dim
        self.decoder = nn.Linear(dim, 5, bias=False)
        with torch.no_grad():
            self.decoder.weight.copy_(torch.eye(5, dim))  # G(z) = z padded: pixel L2 = latent L2
        self.prior = StandardNormal(dim)
        self.encoder = nn.Linear(5, dim, bias=False)
        with torch.no_grad():
            self.encoder.weight.copy_(torch.eye(dim, 5))  # E(G(z)) = z: no cycle error


class Zero(nn.Module):
    def forward(self, z):
        return torch.zeros_like(z[:, 0])


def endpoints(n=6, dim=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, dim, generator=g) * 2, torch.randn(n, dim, generator=g) * 2


def test_zero_iterations_is_slerp_and_endpoints_are_exact():
    aae, (a, b) = LinearAAE(), endpoints()
    path = optimize_paths(aae, a, b, Zero(), PathOptimizerConfig(steps=8, iterations=0))
    torch.testing.assert_close(path.z, interpolate(a, b, 8))
    assert torch.equal(path.z[:, 0], a) and torch.equal(path.z[:, -1], b)


def test_smoothness_alone_straightens_the_path_under_a_linear_decoder():
    # With G linear and λ = 0 the minimum-energy path is the evenly spaced straight line. The
    # learning rate decays so that Adam settles on it instead of jittering around it at lr.
    aae, (a, b) = LinearAAE(), endpoints()
    config = PathOptimizerConfig(
        steps=8, density_weight=0.0, iterations=400, lr=0.05, tol=1e-9, lr_decay=0.01
    )
    path = optimize_paths(aae, a, b, Zero(), config)
    torch.testing.assert_close(path.z, interpolate(a, b, 8, "lerp"), atol=2e-2, rtol=0)
    assert torch.equal(path.z[:, 0], a) and torch.equal(path.z[:, -1], b)


def test_energy_decreases_and_the_density_term_pulls_towards_high_log_q():
    aae, (a, b) = LinearAAE(), endpoints()
    start = interpolate(a, b, 8)
    config = PathOptimizerConfig(steps=8, density_weight=5.0, iterations=60)
    path = optimize_paths(aae, a, b, Zero(), config)
    before = path_energy(aae.decoder, Zero(), aae.prior, start, 5.0)
    after = path_energy(aae.decoder, Zero(), aae.prior, path.z, 5.0)
    assert (after <= before + 1e-4).all() and (after < before).any()
    # ℓ ≡ 0 makes log q = log p: interior points move towards the origin.
    assert path.z[:, 1:-1].norm(dim=-1).mean() < start[:, 1:-1].norm(dim=-1).mean()


def test_converged_pairs_stop_and_modules_are_restored():
    aae, (a, b) = LinearAAE(), endpoints()
    b[0] = a[0]  # a degenerate pair is converged from the first step
    aae.decoder.train()
    config = PathOptimizerConfig(steps=4, iterations=20, density_weight=0.0)
    path = optimize_paths(aae, a, b, Zero(), config)
    iterations = path.records["iterations"]  # (B,): iterations each pair was optimised for
    assert iterations[0] < iterations[1:].max()
    assert aae.decoder.training and all(p.requires_grad for p in aae.decoder.parameters())
    assert all(p.grad is None for p in aae.decoder.parameters())


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError, match="steps"):
        PathOptimizerConfig(steps=1)
    with pytest.raises(ValueError, match="lr"):
        PathOptimizerConfig(lr=0)
    with pytest.raises(ValueError, match="z_a and z_b"):
        optimize_paths(LinearAAE(), torch.zeros(2, 3), torch.zeros(3, 3), Zero())
    for bad in (dict(jump_power=1.0), dict(lr_decay=0.0), dict(cycle_weight=-1.0)):
        with pytest.raises(ValueError):
            PathOptimizerConfig(**bad)
    with pytest.raises(ValueError, match="log_q_threshold"):
        PathOptimizerConfig(log_q_threshold=float("nan"))


def test_inputs_are_checked_like_the_navigators():
    aae, (a, b) = LinearAAE(), endpoints()
    run = lambda za, zb: optimize_paths(aae, za, zb, Zero(), PathOptimizerConfig(steps=4))  # noqa: E731
    with pytest.raises(ValueError, match="z_a must have latent dim d=3"):
        run(a[:, :2], b[:, :2])
    with pytest.raises(TypeError, match="z_a must be a floating tensor"):
        run(a.long(), b.long())
    with pytest.raises(ValueError, match="z_b contains 6 non-finite"):
        run(a, torch.where(torch.arange(3) == 1, torch.nan, b))  # one column of 6 pairs
    with pytest.raises(ValueError, match="z_a is an empty batch"):
        run(a[:0], b[:0])
    with pytest.raises(ValueError, match="share dtype"):
        run(a, b.double())
    single = run(a[0], b[0])  # (d,) pairs are a batch of one
    assert single.z.shape == (1, 5, 3) and torch.equal(single.z[0, -1], b[0])


def energies(aae, z, config, compass=None):
    return path_energy(aae.decoder, compass or Zero(), aae.prior, z, config, aae.encoder)


def test_hard_hinge_has_no_gradient_above_the_threshold_and_the_plain_one_below():
    aae, (a, b) = LinearAAE(), endpoints()
    z = interpolate(a, b, 8).requires_grad_(True)
    smooth = PathOptimizerConfig(steps=8, density_weight=0.0)
    (g0,) = torch.autograd.grad(energies(aae, z, smooth).sum(), z)
    for tau, reference in [(-1e3, smooth), (1e3, PathOptimizerConfig(steps=8, density_weight=3))]:
        hinge = PathOptimizerConfig(steps=8, density_weight=3, log_q_threshold=tau, hinge_width=0)
        (g,) = torch.autograd.grad(energies(aae, z, hinge).sum(), z)
        (expected,) = torch.autograd.grad(energies(aae, z, reference).sum(), z)
        torch.testing.assert_close(g, expected)
    assert not torch.equal(expected, g0)  # below the threshold the density term does act
    # The soft hinge is within s·log 2 per point of the hard one.
    soft = PathOptimizerConfig(steps=8, density_weight=1, log_q_threshold=-5.0, hinge_width=0.5)
    hard = PathOptimizerConfig(steps=8, density_weight=1, log_q_threshold=-5.0, hinge_width=0)
    gap = energies(aae, z, soft) - energies(aae, z, hard)
    assert (gap >= 0).all() and (gap <= 7 * 0.5 * math.log(2) + 1e-5).all()


def test_jump_term_known_value_on_an_evenly_spaced_line():
    # G linear (pixel L2 = latent L2), evenly spaced straight path: all T steps equal Δ, so
    # E = T·T·Δ² + μ·T²·(T·Δ^p)^{2/p}.
    aae, (a, b) = LinearAAE(), endpoints()
    t, mu, p = 8, 0.7, 6.0
    z = interpolate(a, b, t, "lerp")
    delta2 = ((b - a) / t).square().sum(-1)
    config = PathOptimizerConfig(steps=t, density_weight=0, jump_weight=mu, jump_power=p)
    expected = t * t * delta2 + mu * t**2 * t ** (2 / p) * delta2
    torch.testing.assert_close(energies(aae, z, config), expected)


def test_jump_term_shortens_the_largest_step():
    # The density term alone (ℓ ≡ 0: log q = log p) bunches points near the origin and
    # stretches the steps out there; the jump term evens the largest step out again.
    aae, (a, b) = LinearAAE(), endpoints()
    base = dict(steps=8, density_weight=20.0, iterations=150, tol=1e-9)
    steps = {}
    for mu in (0.0, 2.0):
        z = optimize_paths(aae, a, b, Zero(), PathOptimizerConfig(**base, jump_weight=mu)).z
        steps[mu] = z.diff(dim=1).norm(dim=-1).amax(1)
    assert (steps[2.0] < steps[0.0]).all()


def test_degenerate_pairs_and_non_finite_energies_leave_only_finite_points():
    aae, (a, b) = LinearAAE(), endpoints()
    b[0] = a[0]  # every step 0: the jump term must not produce NaN gradients
    config = PathOptimizerConfig(
        steps=6, density_weight=0, jump_weight=1.0, cycle_weight=1.0, iterations=20
    )
    path = optimize_paths(aae, a, b, Zero(), config)
    assert torch.isfinite(path.z).all()
    # Adam rescales rounding-level gradients to lr-sized steps, so "stays put" is approximate.
    torch.testing.assert_close(path.z[0], a[0].expand(7, -1), atol=0.1, rtol=0)
    assert torch.equal(path.z[:, 0], a) and torch.equal(path.z[:, -1], b)

    class Exploding(nn.Module):  # ℓ = NaN wherever |z_1| < 10³, i.e. on every path here
        def forward(self, z):
            return torch.where(z[:, 0].abs() > 1e3, z[:, 0], torch.full_like(z[:, 0], math.nan))

    path = optimize_paths(aae, a, b, Exploding(), PathOptimizerConfig(steps=6, iterations=5))
    torch.testing.assert_close(path.z, interpolate(a, b, 6))  # stopped, at the start path


class DroppingEncoder(nn.Module):
    """E(x) = first dim coordinates of x with the last one zeroed: cycle error = z_last²."""

    def forward(self, x):
        z = x[:, :3].clone()
        z[:, -1] = 0
        return z


def test_cycle_term_is_zero_for_an_exact_autoencoder_and_pulls_to_its_fixed_points():
    aae, (a, b) = LinearAAE(), endpoints()
    z = interpolate(a, b, 8)
    off = PathOptimizerConfig(steps=8, density_weight=0)
    on = PathOptimizerConfig(steps=8, density_weight=0, cycle_weight=50.0)
    torch.testing.assert_close(energies(aae, z, on), energies(aae, z, off))  # E(G(z)) = z
    aae.encoder = DroppingEncoder()
    inner = z[:, 1:-1, -1].square().sum(1)
    torch.testing.assert_close(energies(aae, z, on), energies(aae, z, off) + 50 * inner)
    tolerant = PathOptimizerConfig(steps=8, density_weight=0, cycle_weight=50, cycle_threshold=1e3)
    torch.testing.assert_close(energies(aae, z, tolerant), energies(aae, z, off))
    config = PathOptimizerConfig(steps=8, density_weight=0, cycle_weight=50.0, iterations=300)
    path = optimize_paths(aae, a, b, Zero(), config)
    assert path.z[:, 1:-1, -1].abs().mean() < 0.2 * z[:, 1:-1, -1].abs().mean()
    with pytest.raises(ValueError, match="encoder"):
        path_energy(aae.decoder, Zero(), aae.prior, z, on)


def test_every_term_together_lowers_the_energy_from_a_given_start():
    aae, (a, b) = LinearAAE(), endpoints()
    aae.encoder = DroppingEncoder()
    start = interpolate(a, b, 8)
    noise = torch.randn(start[:, 1:-1].shape, generator=torch.Generator().manual_seed(1))
    start[:, 1:-1] += 0.3 * noise
    config = PathOptimizerConfig(
        steps=8,
        density_weight=2.0,
        log_q_threshold=-6.0,
        jump_weight=0.5,
        cycle_weight=5.0,
        cycle_threshold=0.01,
        iterations=80,
        lr_decay=0.1,
    )
    path = optimize_paths(aae, a, b, Zero(), config, init=start)
    assert torch.equal(path.z[:, 0], a) and torch.equal(path.z[:, -1], b)
    before, after = energies(aae, start, config), energies(aae, path.z, config)
    assert (after < before).all()
    same = optimize_paths(aae, a, b, Zero(), PathOptimizerConfig(steps=8, iterations=0), init=start)
    torch.testing.assert_close(same.z, start)
    with pytest.raises(ValueError, match="init"):
        optimize_paths(aae, a, b, Zero(), config, init=start[:, :-1])


def test_thresholds_are_percentiles_over_encoded_images():
    aae = LinearAAE()
    z = torch.randn(1000, 3, generator=torch.Generator().manual_seed(2))
    images = aae.decoder(z).detach()
    tau = log_q_threshold(aae, Zero(), images, 10.0, batch_size=300)
    assert tau == pytest.approx(float(torch.quantile(aae.prior.log_prob(z).double(), 0.1)))
    assert cycle_threshold(aae, images, 50.0) == pytest.approx(0.0, abs=1e-10)
    aae.encoder = DroppingEncoder()
    kappa = cycle_threshold(aae, images, 50.0)
    # E(x) zeroes z_3, and E(G(E(x))) = E(x): a fixed point after one pass, so error 0 again.
    assert kappa == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="percentile"):
        log_q_threshold(aae, Zero(), images, 101.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_agree():
    aae, (a, b) = LinearAAE(), endpoints()
    aae.encoder = DroppingEncoder()
    config = PathOptimizerConfig(
        steps=8, density_weight=2.0, log_q_threshold=-6.0, jump_weight=0.5, cycle_weight=5.0
    )
    cpu = optimize_paths(aae, a, b, Zero(), config)
    gpu = optimize_paths(aae.cuda(), a.cuda(), b.cuda(), Zero(), config)
    torch.testing.assert_close(gpu.z.cpu(), cpu.z, atol=1e-3, rtol=0)


class BallClassifier(nn.Module):
    """Three classes in 3-D: 0 to the left (x < 0), 1 to the right, 2 in the unit ball."""

    def forward(self, z):
        return torch.stack([-3 * z[:, 0], 3 * z[:, 0], 8 - 8 * z.square().sum(1)], 1)


def crossing_pairs():
    g = torch.Generator().manual_seed(0)
    offsets = 0.2 * torch.randn(4, 2, 2, generator=g)
    a = torch.cat([torch.full((4, 1), -2.5), offsets[:, 0]], 1)
    b = torch.cat([torch.full((4, 1), 2.5), offsets[:, 1]], 1)
    return a, b


def test_class_term_known_value_and_zero_weight_ignores_the_classifier():
    aae, classifier = LinearAAE(), BallClassifier()
    z = torch.tensor([[[-2.0, 0, 0], [0.0, 0, 0], [0.5, 1, 0], [2.0, 0, 0]]])  # ŷ = 0 … 1
    base = PathOptimizerConfig(steps=3, density_weight=0.0)
    plain = path_energy(aae.decoder, Zero(), aae.prior, z, base)
    weighted = path_energy(
        aae.decoder, Zero(), aae.prior, z, replace(base, class_weight=2.0), classifier=classifier
    )
    p = classifier(z[0, 1:-1]).softmax(-1)
    torch.testing.assert_close(weighted - plain, -2.0 * (p[:, 0] + p[:, 1]).log().sum()[None])
    same = z.clone()
    same[0, -1] = torch.tensor([-2.0, 0.5, 0])  # both endpoints class 0: one term only
    weighted = path_energy(
        aae.decoder, Zero(), aae.prior, same, replace(base, class_weight=2.0), classifier=classifier
    )
    plain = path_energy(aae.decoder, Zero(), aae.prior, same, base)
    torch.testing.assert_close(weighted - plain, -2.0 * p[:, 0].log().sum()[None])
    a, b = crossing_pairs()
    config = PathOptimizerConfig(steps=8, density_weight=0.0, iterations=20)
    without = optimize_paths(aae, a, b, Zero(), config)
    ignored = optimize_paths(aae, a, b, Zero(), config, classifier=classifier)
    assert torch.equal(without.z, ignored.z)


def test_class_term_steers_frames_around_a_third_class():
    aae, classifier, (a, b) = LinearAAE(), BallClassifier(), crossing_pairs()
    straight = interpolate(a, b, 8, "lerp")
    config = PathOptimizerConfig(steps=8, density_weight=0.0, iterations=300, tol=1e-9)

    def third_class_frames(path):
        return (classifier(path[:, 1:-1].reshape(-1, 3)).argmax(1) == 2).view(4, -1).sum(1)

    assert (third_class_frames(straight) >= 1).all()
    smooth = optimize_paths(aae, a, b, Zero(), config, init=straight)
    assert (third_class_frames(smooth.z) >= 1).all()  # smoothness alone keeps the straight line
    steered = optimize_paths(
        aae, a, b, Zero(), replace(config, class_weight=3.0), init=straight, classifier=classifier
    )
    assert (third_class_frames(steered.z) == 0).all()
    assert torch.equal(steered.z[:, 0], a) and torch.equal(steered.z[:, -1], b)


def test_class_weight_needs_a_classifier():
    aae, (a, b) = LinearAAE(), endpoints()
    with pytest.raises(ValueError, match="class_weight"):
        PathOptimizerConfig(class_weight=-1.0)
    with pytest.raises(ValueError, match="needs a classifier"):
        optimize_paths(aae, a, b, Zero(), PathOptimizerConfig(class_weight=1.0))
