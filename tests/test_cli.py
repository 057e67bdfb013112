"""Command line: complete help, a tiny end-to-end training run, clear errors."""

import json

import numpy as np
import pytest

from latentnav.aae import AAE
from latentnav.cli import build_parser, main

TRAINING_FLAGS = (
    "--data",
    "--latent-dim",
    "--prior",
    "--epochs",
    "--out",
    "--seed",
    "--accelerator",
)
FLAGS = {
    "demo": ("--data", "--out", "--seed", "--accelerator", "--quick"),
    "train-aae": TRAINING_FLAGS,
    "train": (*TRAINING_FLAGS, "--finetune-epochs"),
    "sample": ("--sampler", "--steps", "--option", "--guidance", "--weight", "--video"),
    "train-guidance": ("--data", "--out", "--samples", "--sampler", "--steps", "--hidden"),
}


@pytest.mark.parametrize("argv", [["--help"], *([c, "--help"] for c in FLAGS)])
def test_help_is_complete(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    if argv == ["--help"]:
        assert all(command in out for command in FLAGS)
    else:
        for flag in FLAGS[argv[0]]:
            assert flag in out, flag


def test_train_aae_writes_checkpoint_figures_and_metrics(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = (rng.random((240, 8, 8)) * 255).astype(np.uint8)
    y = rng.integers(0, 3, 240)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    out = tmp_path / "run"
    code = main(
        [
            "train-aae",
            "--data",
            str(tmp_path / "tiny.npz"),
            "--latent-dim",
            "2",
            "--prior",
            "mixture",
            "--hidden",
            "32",
            "--disc-hidden",
            "16,16",
            "--epochs",
            "1",
            "--batch-size",
            "40",
            "--out",
            str(out),
            "--accelerator",
            "cpu",
            "--compass-steps",
            "100",
            "--no-progress",
        ]
    )
    assert code == 0
    for name in (
        "aae.safetensors",
        "metrics.json",
        "reconstructions.png",
        "latents.png",
        "discriminator.png",
        "training.png",
        "metrics.csv",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"]["image_shape"] == [1, 8, 8]
    loaded = AAE.load(out / "aae.safetensors")
    assert loaded.latent_dim == 2
    assert loaded.compass is not None and 0 <= metrics["compass"]["heldout_accuracy"] <= 1
    assert '"mmd2"' in capsys.readouterr().out


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-aae", "--latent-dim", "0"])
    assert "integer ≥ 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-aae", "--hidden", "a,b"])
    assert "comma-separated" in capsys.readouterr().err
    code = main(["train-aae", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "nope.npz" in capsys.readouterr().err
