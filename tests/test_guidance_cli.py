"""`latentnav train-guidance` and `latentnav sample --guidance` on a tiny bundle."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from latentnav.aae import AAE, AAEConfig
from latentnav.cli import main
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.joint import save_bundle
from latentnav.score_net import ScoreNetConfig


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("guidance")
    rng = np.random.default_rng(0)
    np.savez(root / "tiny.npz", x=(rng.random((300, 8, 8)) * 255).astype(np.uint8),
             y=rng.integers(0, 3, 300))  # fmt: skip
    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(1, 8, 8), latent_dim=2, hidden=(32,), disc_hidden=(16,)))
    net = ScoreNetConfig(latent_dim=2, width=16, blocks=1, embed_dim=8)
    save_bundle(root / "bundle.safetensors", aae, LatentDiffusion(DiffusionConfig(net=net)))
    return root


def _latents(folder):
    return load_file(str(folder / "latents.safetensors"))


def test_train_guidance_then_guided_sampling(bundle, capsys):
    out = bundle / "d"
    args = [
        "train-guidance",
        str(bundle / "bundle.safetensors"),
        "--data",
        str(bundle / "tiny.npz"),
    ]
    args += ["--out", str(out), "--samples", "300", "--sampler", "em", "--steps", "60"]
    assert main([*args, "--hidden", "16,16", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["real_latents"] == 300 and not summary["model_latents_cached"]
    for name in ("guidance.safetensors", "guidance_report.json", "guidance_buckets.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "guidance_report.json").read_text())
    assert len(report["report"]["buckets"]) == 5
    assert main([*args, "--hidden", "16,16", "--no-progress"]) == 0  # second run: cached samples
    assert json.loads(capsys.readouterr().out)["model_latents_cached"]

    sample = ["sample", str(bundle / "bundle.safetensors"), "-n", "32", "--sampler", "em"]
    sample += ["--steps", "20", "--seed", "3"]
    assert main([*sample, "--out", str(bundle / "plain")]) == 0
    zero = [*sample, "--out", str(bundle / "zero"), "--guidance", str(out / "guidance.safetensors")]
    assert main([*zero, "--weight", "0"]) == 0  # λ = 0: the unguided samples, bit for bit
    plain, unguided = _latents(bundle / "plain"), _latents(bundle / "zero")
    assert torch.equal(plain["z"], unguided["z"]) and unguided["log_ratio"].shape == (32,)
    capsys.readouterr()
    guided = [
        *sample,
        "--out",
        str(bundle / "guided"),
        "--guidance",
        str(out / "guidance.safetensors"),
    ]
    assert main([*guided, "--weight", "2", "--schedule", "decreasing", "--boost-rounds", "1"]) == 0
    assert "share_log_ratio_negative" in json.loads(capsys.readouterr().out)
    assert not torch.equal(_latents(bundle / "guided")["z"], plain["z"])
    assert main([*guided, "--schedule", "interval"]) == 2  # needs --t-min/--t-max
    assert "t_min" in capsys.readouterr().err
