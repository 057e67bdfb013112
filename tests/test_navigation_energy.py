"""Energy terms and presets (DESIGN.md §3; RESULTS §6.5, §6.8) against the first interface."""

import pytest
import torch
import torch.nn.functional as F

from latentnav.aae import AAE, AAEConfig
from latentnav.interpolation import interpolate
from latentnav.latent_classifier import LatentClassifier
from latentnav.navigation import Energy, PathContext, Smoothness, make_method
from latentnav.navigation.energy import LABEL_FREE, WITH_CLASSES, label_free, with_classes
from latentnav.networks import LatentDiscriminator
from latentnav.path_optimizer import PathOptimizerConfig, optimize_paths, path_energy

README_LABEL_FREE = dict(density_weight=30, jump_weight=0.3, jump_power=16, cycle_weight=300)
README_WITH_CLASSES = dict(
    density_weight=60, jump_weight=0.5, jump_power=16, cycle_weight=300, class_weight=100
)


def reference_energy(decoder, compass, prior, z, c, encoder, classifier=None):
    """The path energy exactly as the first path_optimizer wrote it (before the terms were
    objects), kept here as the reference the presets must reproduce."""
    b, n, d = z.shape
    images = decoder(z.reshape(b * n, d))
    squared = images.reshape(b, n, -1).diff(dim=1).square().sum(2)
    energy = (n - 1) * squared.sum(1)
    top = squared.detach().amax(1, keepdim=True).clamp_min(1e-12)
    p = c.jump_power
    jump = (squared / top).pow(p / 2).sum(1).clamp_min(1).pow(2 / p) * top[:, 0]
    energy = energy + c.jump_weight * (n - 1) ** 2 * jump
    lq = (prior.log_prob(z[:, 1:-1].reshape(-1, d)) - compass(z[:, 1:-1].reshape(-1, d))).view(
        b, n - 2
    )
    if c.log_q_threshold is None:
        density = -lq.sum(1)
    else:
        below = c.log_q_threshold - lq
        density = (c.hinge_width * F.softplus(below / c.hinge_width)).sum(1)
    energy = energy + c.density_weight * density
    inner = images.view(b, n, *images.shape[1:])[:, 1:-1].flatten(0, 1)
    error = (encoder(inner) - z[:, 1:-1].reshape(-1, d)).square().sum(-1).view(b, n - 2)
    energy = energy + c.cycle_weight * (error - c.cycle_threshold).clamp_min(0).sum(1)
    if c.class_weight > 0:
        logp = classifier(z.reshape(b * n, d)).log_softmax(-1).view(b, n, -1)
        ends = logp[:, [0, -1]].detach().argmax(-1)
        picked = logp[:, 1:-1].gather(2, ends[:, None, :].expand(-1, n - 2, -1))
        same = (ends[:, 0] == ends[:, 1])[:, None]
        energy = energy + c.class_weight * -torch.where(
            same, picked[..., 0], picked.logsumexp(-1)
        ).sum(1)
    return energy


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(16,), disc_hidden=(16,))).eval()
    compass = LatentDiscriminator(3, (16,)).eval()
    classifier = LatentClassifier(3, 4, (16,)).eval()
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 3, generator=g), 1.5 * torch.randn(5, 3, generator=g)
    z = interpolate(a, b, 8) + 0.2 * torch.randn(5, 9, 3, generator=g)
    z[:, 0], z[:, -1] = a, b
    return aae, compass, classifier, a, b, z


def test_the_presets_hold_the_readme_settings():
    assert {k: LABEL_FREE[k] for k in README_LABEL_FREE} == README_LABEL_FREE
    assert {k: WITH_CLASSES[k] for k in README_WITH_CLASSES} == README_WITH_CLASSES
    # RESULTS §6.5 / §6.8 ran with the plain −log q (no τ) and κ = 0.
    assert LABEL_FREE["log_q_threshold"] is None and LABEL_FREE["cycle_threshold"] == 0.0


@pytest.mark.parametrize("overrides", [{}, {"log_q_threshold": -5.0, "cycle_threshold": 0.01}])
def test_label_free_equals_the_first_path_energy_exactly(setup, overrides):
    aae, compass, _, _, _, z = setup
    config = PathOptimizerConfig(steps=8, **README_LABEL_FREE, **overrides)
    with torch.no_grad():
        preset = label_free(aae, compass, **overrides)(PathContext(z, aae.decoder))
        reference = reference_energy(aae.decoder, compass, aae.prior, z, config, aae.encoder)
        legacy = path_energy(aae.decoder, compass, aae.prior, z, config, aae.encoder)
    assert torch.equal(preset, reference) and torch.equal(preset, legacy)  # same ops, same order


def test_with_classes_equals_the_first_path_energy_exactly(setup):
    aae, compass, classifier, _, _, z = setup
    config = PathOptimizerConfig(steps=8, **README_WITH_CLASSES)
    with torch.no_grad():
        preset = with_classes(aae, compass, classifier)(PathContext(z, aae.decoder))
        reference = reference_energy(
            aae.decoder, compass, aae.prior, z, config, aae.encoder, classifier
        )
        legacy = path_energy(aae.decoder, compass, aae.prior, z, config, aae.encoder, classifier)
    assert torch.equal(preset, reference) and torch.equal(preset, legacy)
    without = label_free(aae, compass, density_weight=60.0, jump_weight=0.5)
    assert not torch.equal(preset, without(PathContext(z, aae.decoder)).detach())  # ν acts


@pytest.mark.parametrize("labels", [False, True])
def test_the_optimizer_method_with_a_preset_reproduces_optimize_paths(setup, labels):
    aae, compass, classifier, a, b, _ = setup
    if labels:
        energy, config = with_classes(aae, compass, classifier), README_WITH_CLASSES
    else:
        energy, config = label_free(aae, compass), README_LABEL_FREE
    old = optimize_paths(
        aae, a, b, compass, PathOptimizerConfig(steps=8, iterations=12, **config),
        classifier=classifier if labels else None,
    )  # fmt: skip
    new = make_method("optimizer", aae, energy=energy, compass=compass, steps=8, iterations=12)
    path = new.path(a, b)
    assert torch.equal(path.z, old.z)
    for name in ("energy", "iterations", "d_score", "accepted"):
        assert torch.equal(path.records[name], old.records[name])
    assert not torch.equal(path.z, interpolate(a, b, 8))  # it did move


def test_a_user_defined_term_composes_and_unknown_settings_are_rejected(setup):
    aae, compass, _, _, _, z = setup
    context = PathContext(z, aae.decoder)

    def length(ctx):  # latent polyline length, (B,)
        return ctx.z.diff(dim=1).norm(dim=-1).sum(1)

    total = Energy(Smoothness(), length)(context)
    torch.testing.assert_close(total, Smoothness()(context) + length(context), rtol=0, atol=0)
    with pytest.raises(TypeError, match="callable"):
        Energy(Smoothness(), 3.0)
    with pytest.raises(ValueError, match="unknown preset setting"):
        label_free(aae, compass, density=3.0)


def test_the_context_decodes_once(setup):
    aae, compass, _, _, _, z = setup
    calls = []
    decoder = aae.decoder

    def counting(x):
        calls.append(len(x))
        return decoder(x)

    with torch.no_grad():
        label_free(aae, compass)(PathContext(z, counting))
    assert calls == [z.shape[0] * z.shape[1]]


def test_jump_cap_is_zero_within_the_cap_and_the_squared_excess_beyond(setup):
    from latentnav.navigation.energy import JumpCap

    aae, _, _, a, b, z = setup
    straight = PathContext(interpolate(a, b, 8), aae.decoder)
    with torch.no_grad():
        # SLERP itself, measured against itself (no reference: the term builds SLERP): zero.
        assert torch.equal(JumpCap(10.0)(PathContext(straight.z, aae.decoder)), torch.zeros(5))
        context = PathContext(z, aae.decoder, reference=straight)
        cap = 1.2**2 * straight.squared_steps.amax(1, keepdim=True)
        expected = 10.0 * 8 * (context.squared_steps - cap).clamp_min(0).sum(1)
        got = JumpCap(10.0, ratio=1.2)(context)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        assert (got > 0).any()  # the perturbed paths do exceed it somewhere
        assert torch.equal(JumpCap(10.0, ratio=100.0)(context), torch.zeros(5))
    for bad in ({"weight": -1.0}, {"weight": 1.0, "ratio": 0.0}):
        with pytest.raises(ValueError, match="weight|ratio"):
            JumpCap(**bad)


def test_the_optimizer_measures_the_cap_against_its_start_and_it_cuts_the_largest_step(setup):
    aae, compass, _, a, b, _ = setup
    plain = make_method("optimizer", aae, compass=compass, steps=8, iterations=60)
    capped = make_method(
        "optimizer", aae, energy=label_free(aae, compass, cap_weight=100.0), compass=compass,
        steps=8, iterations=60,
    )  # fmt: skip
    assert capped.config()["energy"][2] == {"term": "jump_cap", "weight": 100.0, "ratio": 1.0}
    assert [t["term"] for t in plain.config()["energy"]].count("jump_cap") == 0
    paths = [m.path(a, b).z for m in (plain, capped)]
    with torch.no_grad():
        steps = [PathContext(z, aae.decoder).squared_steps.amax(1) for z in paths]
    assert (steps[1] <= steps[0] + 1e-6).all() and (steps[1] < steps[0]).any()


def test_a_context_with_a_reference_decodes_only_the_interior(setup):
    aae, *_ = setup
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    reference = PathContext(interpolate(a, b, 6), aae.decoder)
    z = interpolate(a, b, 6) + 0.1 * torch.randn(4, 7, 3)
    z[:, 0], z[:, -1] = a, b
    rows = []
    hook = aae.decoder.register_forward_hook(lambda m, args, out: rows.append(len(args[0])))
    try:
        with torch.no_grad():
            plain = PathContext(z, aae.decoder).images
            reference.images  # noqa: B018  (decoded once, all 7 points)
            shared = PathContext(z, aae.decoder, reference).images
    finally:
        hook.remove()
    assert rows == [4 * 7, 4 * 7, 4 * 5]  # with the reference: the 5 interior points only
    torch.testing.assert_close(shared, plain)  # the same frames, ends from the reference
    ends = reference.images.view(4, 7, -1)[:, [0, -1]]
    assert torch.equal(shared.view(4, 7, -1)[:, [0, -1]], ends)
