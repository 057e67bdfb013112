"""`latentnav navigate`: pairs by indices, class pair or random, any method, video, clear errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from latentnav.aae import AAE, AAEConfig
from latentnav.cli import main
from latentnav.compass import save_compass
from latentnav.navigate_run import parse_pairs
from latentnav.navigation import LatentPath
from latentnav.networks import LatentDiscriminator


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("navigate")
    rng = np.random.default_rng(0)
    x = lambda n: (rng.random((n, 8, 8)) * 255).astype(np.uint8)  # noqa: E731
    np.savez(root / "tiny.npz", x_train=x(60), y_train=rng.integers(0, 3, 60),
             x_test=x(30), y_test=np.arange(30) % 3)  # fmt: skip
    torch.manual_seed(0)
    AAE(AAEConfig(image_shape=(1, 8, 8), latent_dim=2, hidden=(16,), disc_hidden=(8,))).save(
        root / "aae.safetensors"
    )
    save_compass(LatentDiscriminator(2, (8,)), root / "compass.safetensors")
    return root


def _run(files, *extra):
    argv = ["navigate", str(files / "aae.safetensors"), "--data", str(files / "tiny.npz")]
    return main([*argv, "--steps", "6", *extra])


def test_methods_pairs_and_outputs(files, capsys):
    out = files / "slerp"
    assert _run(files, "--method", "slerp", "--pairs", "0,1 2,4", "--out", str(out),
                "--video", "v.gif") == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 2 and summary["method"] == "slerp"
    path = LatentPath.load(out / "paths.safetensors")
    assert path.z.shape == (2, 7, 2) and (out / "strip.png").is_file()
    assert Image.open(out / "v.gif").n_frames == 7  # holds fold into the end frames' delays
    out = files / "default"
    assert _run(files, "--compass", str(files / "compass.safetensors"), "--pairs", "1:2",
                "--out", str(out)) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["method"] == "navigator (default)"
    saved = LatentPath.load(out / "paths.safetensors")  # the optimiser's frames under the cap
    assert saved.method == "capped" and saved.config["base"]["name"] == "optimizer"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pairs", "0;1"], "expected 'i,j' pairs"),
        (["--pairs", "0,99"], "out of range"),
        (["--pairs", "random:0"], "must be ≥ 1"),
        (["--method", "teleport"], "--method must be one of"),
        (["--method", "ode"], "needs a bundle"),
        ([], "needs a compass"),
    ],
)
def test_bad_requests_are_one_clear_line(files, capsys, tmp_path, extra, message):
    assert _run(files, "--out", str(tmp_path / "o"), *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_parse_pairs_by_class_and_at_random():
    labels = torch.arange(30) % 3
    a, b = parse_pairs("1:2", labels, seed=0)
    assert (labels[a] == 1).all() and (labels[b] == 2).all()
    a, b = parse_pairs("random:5", labels, seed=0)
    assert len(a) == 5 and (labels[a] != labels[b]).all()
    assert torch.equal(parse_pairs("random:5", labels, seed=0)[0], a)  # seeded


def test_the_graph_method_runs_on_a_checkpoint_with_a_latent_bank(files, capsys, tmp_path):
    from latentnav.navigation.graph import data_bank

    aae = AAE.load(files / "aae.safetensors")
    assert main(["navigate", str(files / "aae.safetensors"), "--data", str(files / "tiny.npz"),
                 "--method", "graph", "--out", str(tmp_path / "no")]) != 0  # fmt: skip
    assert "needs bank=" in capsys.readouterr().err
    images = torch.from_numpy(np.load(files / "tiny.npz")["x_train"]).float()[:, None] / 255
    aae.latent_bank = data_bank(aae, images)
    aae.save(tmp_path / "aae.safetensors")
    argv = ["navigate", str(tmp_path / "aae.safetensors"), "--data", str(files / "tiny.npz")]
    assert main([*argv, "--steps", "6", "--method", "graph", "--pairs", "0,1",
                 "--out", str(tmp_path / "graph")]) == 0  # fmt: skip
    path = LatentPath.load(tmp_path / "graph" / "paths.safetensors")
    assert path.method == "graph" and path.z.shape == (1, 7, 2) and path.config["bank"] == 60


def test_graph_data_builds_the_graph_over_the_training_images(files, capsys, tmp_path):
    argv = ["navigate", str(files / "aae.safetensors"), "--data", str(files / "tiny.npz")]
    assert main([*argv, "--graph-data", "--out", str(tmp_path / "no")]) != 0
    assert "--graph-data goes with --method graph" in capsys.readouterr().err
    assert main([*argv, "--steps", "6", "--method", "graph", "--graph-data", "--pairs", "0,1",
                 "--out", str(tmp_path / "data")]) == 0  # fmt: skip
    path = LatentPath.load(tmp_path / "data" / "paths.safetensors")
    assert path.config["neighbours"] == "data" and path.config["invert"] == 0.95
    assert path.config["bank"] == 60 and path.z.shape == (1, 7, 2)
