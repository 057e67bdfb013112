"""Joint D_ψ training (the ablation of DESIGN.md §5): rounds alternate score epochs and D_ψ fits."""

import pytest
import torch

from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.guidance_joint import JointGuidanceConfig, fit_guidance_jointly
from latentnav.score_net import ScoreNetConfig
from latentnav.time_discriminator import TimeDiscriminator, TimeDiscriminatorFitConfig


def _models(seed: int = 0):
    torch.manual_seed(seed)
    net = ScoreNetConfig(latent_dim=2, width=16, blocks=1, embed_dim=8)
    diffusion = LatentDiffusion(DiffusionConfig(net=net, batch_size=64, epochs=1))
    return diffusion, TimeDiscriminator(2, hidden=(16,), embed_dim=8)


def _config(**kw):
    disc = TimeDiscriminatorFitConfig(max_steps=30, batch_size=64, eval_every=10, patience=5)
    return JointGuidanceConfig(**{"rounds": 2, "score_epochs": 1, "samples": 128,
                                  "sampler": "em", "disc": disc, **kw})  # fmt: skip


def test_one_round_is_score_epochs_then_a_post_hoc_fit_on_that_models_samples():
    from latentnav.time_discriminator import fit_time_discriminator
    from latentnav.training import fit_diffusion

    real = torch.randn(256, 2, generator=torch.Generator().manual_seed(1)) * 0.3 + 1.0
    diffusion, disc = _models()
    before = [p.detach().clone() for p in diffusion.net.parameters()]
    config = _config(rounds=1)
    records = fit_guidance_jointly(diffusion, disc, real, config=config)
    assert [r["round"] for r in records] == [1] and records[0]["fakes"] == 128
    assert 0 <= records[0]["heldout_accuracy"] <= 1
    assert any(
        not torch.equal(a, b) for a, b in zip(before, diffusion.net.parameters(), strict=True)
    )
    # The same steps by hand give the same weights, bit for bit (the procedure's known answer).
    by_hand, disc2 = _models()
    fit_diffusion(by_hand, real, None, "cpu", None, False, epochs=1)
    fake = by_hand.eval().sample(128, "em", seed=0).z
    fit_time_discriminator(disc2, by_hand.sde, real, fake, config.disc)
    for a, b in zip(disc.parameters(), disc2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_zero_score_epochs_is_the_post_hoc_fit_warm_started_per_round():
    real = torch.randn(256, 2, generator=torch.Generator().manual_seed(1))
    diffusion, disc = _models()
    before = [p.detach().clone() for p in diffusion.net.parameters()]
    fit_guidance_jointly(diffusion, disc, real, config=_config(score_epochs=0, rounds=1))
    assert all(torch.equal(a, b) for a, b in zip(before, diffusion.net.parameters(), strict=True))


@pytest.mark.parametrize(("field", "value"), [("rounds", 0), ("samples", 1), ("sampler", "x")])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        JointGuidanceConfig(**{field: value})


def test_real_latents_are_checked():
    diffusion, disc = _models()
    with pytest.raises(ValueError, match="real"):
        fit_guidance_jointly(diffusion, disc, torch.randn(10, 3), config=_config())
