"""LatentDiffusion, joint training with the AAE, bundles and the `train` / `sample` commands."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from latentnav.aae import AAE, AAEConfig
from latentnav.checkpoint import CheckpointError
from latentnav.cli import main
from latentnav.data import ImageDataModule, from_arrays
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.joint import JointTraining, load_bundle, save_bundle
from latentnav.score_net import ScoreNetConfig
from latentnav.training import AAETraining, TrainConfig, fit_diffusion


def _small(latent_dim=2, **kw):
    torch.manual_seed(0)
    net = ScoreNetConfig(latent_dim=latent_dim, width=64, blocks=2, embed_dim=32)
    return LatentDiffusion(DiffusionConfig(net=net, **kw))


def _mixture(n, seed):
    g = torch.Generator().manual_seed(seed)
    k = (torch.rand(n, generator=g) < 0.7).long()
    return torch.tensor([[-2.0, 0.0], [2.0, 0.0]])[k] + 0.3 * torch.randn(n, 2, generator=g)


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = _small(epochs=25, batch_size=256, lr=3e-3)
        fit_diffusion(model, _mixture(3000, 0), accelerator="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    return model


def test_learned_model_samples_the_mixture(trained):
    z = trained.sample(2000, "pc", steps=200, seed=0).z
    assert (z[:, 0] > 0).float().mean().item() == pytest.approx(0.7, abs=0.05)
    assert z[:, 1].std().item() == pytest.approx(0.3, rel=0.25)
    # The EMA weights are what sampling uses by default; both give a finite model.
    assert torch.isfinite(trained.sample(10, "em", steps=20, ema=False).z).all()


def test_learned_log_likelihood_is_close_to_the_truth(trained):
    z = _mixture(200, 1)
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    comp = torch.distributions.Normal(centers, 0.3)
    truth = torch.logsumexp(
        comp.log_prob(z[:, None]).sum(-1) + torch.tensor([0.3, 0.7]).log(), dim=1
    )
    ll = trained.log_likelihood(z, rtol=1e-4, atol=1e-4).log_prob
    assert abs((ll - truth).mean().item()) / 2 < 0.15


def test_save_load_round_trip_gives_identical_samples(trained, tmp_path):
    trained.save(tmp_path / "d.safetensors")
    again = LatentDiffusion.load(tmp_path / "d.safetensors")
    a = trained.sample(16, "em", steps=10, seed=3).z
    assert torch.equal(a, again.sample(16, "em", steps=10, seed=3).z)
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        LatentDiffusion.load(tmp_path / "bad.safetensors")


def test_bad_inputs(trained):
    with pytest.raises(ValueError, match="n must be"):
        trained.sample(0)
    with pytest.raises(ValueError, match="latent dim d=2"):
        trained.log_likelihood(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="latents"):
        fit_diffusion(trained, torch.zeros(10, 5))
    with pytest.raises(ValueError, match="loss must be one of"):
        DiffusionConfig(loss="nce")


def test_ode_interpolation_stays_in_the_modes(trained):
    """Between one latent of each mode, SLERP crosses the empty gap |z₀| < 1 linearly; the
    probability-flow interpolation spends fewer points there. Endpoints exact; t → ε is SLERP."""
    from latentnav.interpolation import interpolate

    g = torch.Generator().manual_seed(5)
    z_a = torch.tensor([-2.0, 0.0]) + 0.3 * torch.randn(32, 2, generator=g)
    z_b = torch.tensor([2.0, 0.0]) + 0.3 * torch.randn(32, 2, generator=g)
    path = trained.interpolate(z_a, z_b, steps=16, rtol=1e-4, atol=1e-4)
    assert path.shape == (32, 17, 2) and torch.isfinite(path).all()
    assert torch.equal(path[:, 0], z_a) and torch.equal(path[:, -1], z_b)
    slerp = interpolate(z_a, z_b, 16)
    in_gap = lambda p: (p[:, 1:-1, 0].abs() < 1).float().mean().item()  # noqa: E731
    assert in_gap(path) < 0.75 * in_gap(slerp), (in_gap(path), in_gap(slerp))
    near = trained.interpolate(z_a, z_b, steps=16, t=1e-3 + 1e-9)
    torch.testing.assert_close(near, slerp, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="z_b"):
        trained.interpolate(z_a, z_b[:, :1])
    with pytest.raises(ValueError, match="steps must be"):
        trained.interpolate(z_a, z_b, steps=0)


def _datamodule(seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((200, 8, 8)) * 255).astype(np.uint8)
    data = from_arrays(x, rng.integers(0, 3, 200))
    return ImageDataModule(data, batch_size=50, seed=seed)


def _aae():
    torch.manual_seed(1)
    return AAE(AAEConfig(image_shape=(1, 8, 8), latent_dim=2, hidden=(32,), disc_hidden=(16,)))


def _fit(module, epochs=1):
    L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    ).fit(module, datamodule=_datamodule())


def test_joint_training_leaves_the_aae_exactly_as_alone():
    """The score step uses detached latents: the AAE's weights equal a plain AAE run's."""
    config = TrainConfig(epochs=1, batch_size=50)
    alone, joint = _aae(), _aae()
    diffusion = _small()
    before = [p.clone() for p in diffusion.net.parameters()]
    _fit(AAETraining(alone, config))
    _fit(JointTraining(joint, diffusion, config))
    for a, b in zip(alone.state_dict().values(), joint.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert any(
        not torch.equal(a, b) for a, b in zip(before, diffusion.net.parameters(), strict=True)
    )
    assert int(diffusion.ema_updates) > 0


def test_bundle_round_trip(tmp_path):
    from latentnav.networks import LatentDiscriminator

    aae, diffusion = _aae(), _small()
    aae.compass = LatentDiscriminator(2, (8,))  # a stored compass travels with the bundle
    save_bundle(tmp_path / "b.safetensors", aae, diffusion)
    aae2, diffusion2 = load_bundle(tmp_path / "b.safetensors")
    assert aae2.compass.hidden == (8,)
    for a, b in zip(aae.state_dict().values(), aae2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(diffusion.state_dict().values(), diffusion2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    aae.save(tmp_path / "aae.safetensors")
    with pytest.raises(CheckpointError, match="expected 'latentnav.bundle/1'"):
        load_bundle(tmp_path / "aae.safetensors")


def test_cli_train_then_sample(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "tiny.npz",
        x=(rng.random((240, 8, 8)) * 255).astype(np.uint8),
        y=rng.integers(0, 3, 240),
    )
    out = tmp_path / "run"
    args = ["--data", str(tmp_path / "tiny.npz"), "--latent-dim", "2", "--hidden", "32"]
    args += ["--disc-hidden", "16", "--epochs", "2", "--batch-size", "40", "--out", str(out)]
    args += ["--score-width", "32", "--score-blocks", "1", "--finetune-epochs", "2"]
    args += ["--compass-steps", "0"]  # no compass: the bundle holds the AAE alone
    assert main(["train", *args, "--accelerator", "cpu", "--no-progress"]) == 0
    for name in ("bundle.safetensors", "metrics.json", "score_training.png", "samples.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["diffusion"]["net"]["width"] == 32
    capsys.readouterr()
    sample_out = tmp_path / "samples"
    argv = ["sample", str(out / "bundle.safetensors"), "-n", "8", "--out", str(sample_out)]
    assert main(argv) == 0  # the default sampler: the adaptive ODE
    assert json.loads(capsys.readouterr().out)["sampler"] == "ode"
    assert main([*argv, "--video", "denoise.gif"]) == 0  # the ODE's 48-point grid, ± holds
    gif = Image.open(sample_out / "denoise.gif")  # GIF folds repeated frames into durations
    durations = [(gif.seek(k), gif.info["duration"])[1] for k in range(gif.n_frames)]
    step = durations[1]
    assert gif.n_frames == 48 and set(durations[1:-1]) == {step}
    assert durations[0] == durations[-1] == 7 * step  # each end held for 6 more frames
    assert main([*argv, "--video", "d.gif", "--sampler", "prior"]) == 2
    assert main([*argv, "--option", "snr=0.2"]) == 2  # an option the ODE does not take
    assert "--option" in capsys.readouterr().err
    argv += ["--sampler", "pc"]
    assert main([*argv, "--steps", "25"]) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] == 50
    assert main([*argv, "--steps", "5"]) == 2  # too few for VP's discretisation: a clear error
    assert "steps ≥ 20" in capsys.readouterr().err
    assert (sample_out / "samples.png").is_file()
    assert main(["sample", str(tmp_path / "missing.safetensors")]) == 2


def test_ncsn_levels_and_class_conditional_score_net():
    model = _small(noise_levels=10, sde={"name": "ve", "sigma_max": 5.0})
    loss = model.loss(_mixture(64, 0), generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    torch.manual_seed(0)
    net = ScoreNetConfig(latent_dim=2, width=16, blocks=1, embed_dim=8, num_classes=3)
    cond = LatentDiffusion(DiffusionConfig(net=net))
    torch.nn.init.normal_(cond.net.out.weight)  # zero-initialised output: make y visible
    z, t = torch.randn(4, 2), torch.full((4,), 0.5)
    s0, s1 = (
        cond.net(z, t, torch.zeros(4, dtype=torch.long)),
        cond.net(z, t, torch.ones(4, dtype=torch.long)),
    )
    assert not torch.allclose(s0, s1)
    assert cond.net(z, t).shape == (4, 2)  # y = None: the "no label" token


def test_bundle_loader_refuses_mismatched_parts_and_oversized_configs(tmp_path):
    from latentnav.checkpoint import save_tensors

    aae, diffusion = _aae(), _small(latent_dim=3)  # the AAE's latents are 2-D
    save_bundle(tmp_path / "b.safetensors", aae, diffusion)
    with pytest.raises(CheckpointError, match="latent dim 2 with a diffusion model of latent"):
        load_bundle(tmp_path / "b.safetensors")
    # A config asking for a huge score network beside small tensors: refused from the header.
    config = {"net": {"latent_dim": 2, "width": 200_000, "blocks": 2, "embed_dim": 32}}
    save_tensors(tmp_path / "d.safetensors", _small().state_dict(), "latentnav.diffusion/1", config)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        LatentDiffusion.load(tmp_path / "d.safetensors")
