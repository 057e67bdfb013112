"""Hostile checkpoint files for the AAE, compass and latent classifier loaders; training-config
validation; CLI errors (exit 2, one line, no traceback unless --debug)."""

import json
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from latentnav.aae import AAE, AAEConfig
from latentnav.checkpoint import CheckpointError
from latentnav.compass import load_compass, save_compass
from latentnav.latent_classifier import (
    LatentClassifier,
    load_latent_classifier,
    save_latent_classifier,
)
from latentnav.networks import LatentDiscriminator

SMALL = dict(hidden=(16,), disc_hidden=(8,), channels=(4, 8, 8))


def tamper(path, out, **changes):
    """Copy a checkpoint to ``out`` with its JSON config updated by ``changes``."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    config = json.loads(meta["config"]) | changes
    save_file(load_file(str(path)), str(out), metadata={**meta, "config": json.dumps(config)})
    return out


@pytest.mark.parametrize("prior", [{"name": "normal"}, {"name": "mixture", "k": 3}, "swiss"])
@pytest.mark.parametrize("family", ["mlp", "conv"])
def test_aae_skeleton_on_meta_matches_the_real_model(prior, family):
    prior = {"name": "swiss-roll", "n_components": 5} if prior == "swiss" else prior
    config = AAEConfig(latent_dim=2, family=family, prior=prior, disc_spectral_norm=True, **SMALL)
    real = AAE(config)
    saved = asdict(config) | {"prior": real.prior.config()}
    with torch.device("meta"):
        skeleton = AAE(AAEConfig(**saved))
    specs = {k: (v.shape, v.dtype) for k, v in real.state_dict().items()}
    assert {k: (v.shape, v.dtype) for k, v in skeleton.state_dict().items()} == specs
    assert all(v.is_meta for k, v in skeleton.state_dict().items() if not k.startswith("prior."))


def test_explicit_mixture_prior_builds_on_meta():
    from latentnav.priors import GaussianMixture, prior_from_config

    mix = GaussianMixture(torch.randn(4, 3), stds=0.5)
    with torch.device("meta"):
        skeleton = prior_from_config(mix.config())
    assert skeleton.means.is_meta and skeleton.scale_tril.shape == (4, 3, 3)
    with pytest.raises(ValueError, match="means must be a finite"):
        GaussianMixture(torch.tensor([[float("nan"), 0.0]]), stds=1.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_aae_with_oversized_config_is_refused_cheaply(tmp_path):
    small = AAE(AAEConfig(**SMALL)).save(tmp_path / "small.safetensors")
    crafted = tamper(small, tmp_path / "crafted.safetensors", hidden=[100_000])
    assert crafted.stat().st_size < 1_000_000
    # In a fresh process: warm up with a valid load, then time the refusal and measure peak RSS;
    # building the crafted model for real (157 M parameters) shows the measurement would see it.
    code = f"""
import json, re, time
from latentnav.aae import AAE, AAEConfig
from latentnav.checkpoint import CheckpointError
def peak():  # VmHWM, this process's peak RSS in MiB (ru_maxrss inherits the parent's peak)
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
AAE.load({str(small)!r})
before, start = peak(), time.perf_counter()
try:
    AAE.load({str(crafted)!r})
    error = None
except CheckpointError as err:
    error = str(err)
seconds, grown = time.perf_counter() - start, peak() - before
model = AAE(AAEConfig(hidden=(100_000,), disc_hidden=(8,)))
print(json.dumps(dict(error=error, seconds=seconds, grown=grown, real=peak() - before)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (
        "crafted.safetensors does not fit the model: shape mismatch at 'decoder." in result["error"]
    )
    assert result["seconds"] < 1.0
    assert result["grown"] < 50, result
    assert result["real"] > 400, result  # the measurement is sensitive enough


def test_aae_file_of_another_architecture_names_the_key(tmp_path):
    path = AAE(AAEConfig(**SMALL)).save(tmp_path / "a.safetensors")
    crafted = tamper(path, tmp_path / "b.safetensors", hidden=[17])
    match = r"b.safetensors does not fit the model: shape mismatch at 'decoder.net.0.bias': \(16,\)"
    with pytest.raises(CheckpointError, match=match):
        AAE.load(crafted)
    with pytest.raises(CheckpointError, match="invalid latentnav.aae/1 config.*latent_dim"):
        AAE.load(tamper(path, tmp_path / "c.safetensors", latent_dim=0))
    with pytest.raises(CheckpointError, match="invalid latentnav.aae/1 config.*bogus"):
        AAE.load(tamper(path, tmp_path / "d.safetensors", bogus=1))


def test_compass_and_classifier_loaders_check_first(tmp_path):
    compass = save_compass(LatentDiscriminator(2, (8,), False), tmp_path / "compass.safetensors")
    classifier = save_latent_classifier(LatentClassifier(2, 3, (8,)), tmp_path / "cls.safetensors")
    assert load_compass(compass).hidden == (8,)
    assert load_latent_classifier(classifier).num_classes == 3
    for loader, path in ((load_compass, compass), (load_latent_classifier, classifier)):
        crafted = tamper(path, tmp_path / "crafted.safetensors", hidden=[100_000, 100_000])
        with pytest.raises(CheckpointError, match="shape mismatch at 'net.0.bias'"):
            loader(crafted)
        broken = tamper(path, tmp_path / "broken.safetensors", hidden=[-3])
        with pytest.raises(CheckpointError, match="invalid .* config"):
            loader(broken)


def test_crafted_pickle_is_refused_by_every_loader(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save(AAE(AAEConfig(**SMALL)).state_dict(), path)
    for loader in (AAE.load, load_compass, load_latent_classifier):
        with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
            loader(path)


# ---- config validation --------------------------------------------------------------------

TRAIN_REJECTS = [
    ("epochs", 0, r"epochs must be an int ≥ 1, got 0"),
    ("epochs", -1, r"epochs must be an int ≥ 1"),
    ("epochs", 2.5, r"epochs must be an int"),
    ("epochs", True, r"epochs must be an int"),
    ("batch_size", 0, r"batch_size must be an int ≥ 1"),
    ("lr_reconstruction", 0.0, r"lr_reconstruction must be a finite number > 0"),
    ("lr_discriminator", -1e-3, r"lr_discriminator must be a finite number > 0"),
    ("lr_generator", float("nan"), r"lr_generator must be a finite number > 0"),
    ("lr_generator", float("inf"), r"lr_generator must be a finite number > 0"),
    ("betas", (0.5,), r"betas must be a pair"),
    ("betas", 0.5, r"betas must be a pair"),
    ("betas", (1.0, 0.999), r"betas\[0\] must be a finite number in \[0, 1\)"),
    ("betas", (0.5, -0.1), r"betas\[1\] must be a finite number in \[0, 1\)"),
    ("reconstruction", "l1", r"reconstruction must be one of 'bce', 'mse', got 'l1'"),
    ("lr_schedule", "linear", r"lr_schedule must be one of 'cosine', 'constant'"),
    ("gradient_penalty", -1.0, r"gradient_penalty must be a finite number ≥ 0"),
    ("lr_final_fraction", 0.0, r"lr_final_fraction must be a finite number in \(0, 1\]"),
    ("lr_final_fraction", 1.5, r"lr_final_fraction must be a finite number in \(0, 1\]"),
    ("mmd_points", 1, r"mmd_points must be an int ≥ 2"),
    ("seed", -1, r"seed must be an int in \[0, "),
    ("seed", "0", r"seed must be an int"),
]


@pytest.mark.parametrize("field,value,match", TRAIN_REJECTS)
def test_train_config_rejects(field, value, match):
    from latentnav.training import TrainConfig

    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_train_config_accepts_edges_and_json_lists():
    from dataclasses import FrozenInstanceError

    from latentnav.training import TrainConfig

    config = TrainConfig(epochs=1, betas=[0.0, 0.5], gradient_penalty=0, lr_final_fraction=1.0)
    assert config.betas == (0.0, 0.5)
    assert TrainConfig(**json.loads(json.dumps(asdict(config)))) == config
    with pytest.raises(FrozenInstanceError):
        config.epochs = 5


AAE_REJECTS = [
    ("latent_dim", 0, r"latent_dim must be an int ≥ 1, got 0"),
    ("latent_dim", 2.0, r"latent_dim must be an int"),
    ("hidden", (64, 0), r"hidden\[1\] must be an int ≥ 1, got 0"),
    ("hidden", 64, r"hidden must be a tuple"),
    ("disc_hidden", (-8,), r"disc_hidden\[0\] must be an int ≥ 1"),
    ("channels", (8, 1.5), r"channels\[1\] must be an int ≥ 1"),
    ("image_shape", (1, 28), r"image_shape must be \(C, H, W\) or \(n,\)"),
    ("image_shape", (1, 0, 28), r"image_shape\[1\] must be an int ≥ 1"),
    ("family", "resnet", r"family must be one of 'mlp', 'conv'"),
    ("disc_spectral_norm", "yes", r"disc_spectral_norm must be a bool"),
    ("prior", "normal", r"prior must be a dict with a 'name'"),
    ("region_band", (0.2,), r"region_band must be a pair"),
    ("region_band", (0.2, float("nan")), r"region_band\[1\] must be a finite number"),
]


@pytest.mark.parametrize("field,value,match", AAE_REJECTS)
def test_aae_config_rejects(field, value, match):
    with pytest.raises(ValueError, match=match):
        AAEConfig(**{field: value})


# ---- CLI errors -------------------------------------------------------------------------------


def run_cli(argv, capsys):
    from latentnav.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def assert_one_line(err, *needles):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_cli_missing_and_wrong_files(tmp_path, capsys):
    code, err = run_cli(
        ["train-aae", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2
    assert_one_line(err, "latentnav train-aae: error:", "nope.npz")
    wrong = tmp_path / "wrong.npz"
    wrong.write_text("not a numpy archive\n")
    code, err = run_cli(["train-aae", "--data", str(wrong), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert_one_line(err, "latentnav train-aae: error:")
    code, err = run_cli(["sample", str(wrong), "--out", str(tmp_path / "s")], capsys)
    assert code == 2
    assert_one_line(err, "wrong.npz is not a readable safetensors checkpoint")
    code, err = run_cli(["sample", str(tmp_path / "none.safetensors")], capsys)
    assert code == 2
    assert_one_line(err, "checkpoint not found", "none.safetensors")


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train-aae", "--latent-dim", "0"], "--latent-dim: expected an integer ≥ 1"),
        (["train-aae", "--epochs", "many"], "--epochs"),
        (["train-aae", "--prior", "cauchy"], "invalid choice: 'cauchy'"),
        (["train-aae", "--seed", "-1", "--accelerator", "cpu"], "seed must be an int in [0, "),
        (["train-aae", "--accelerator", "abacus"], "--accelerator must be one of auto, cpu"),
        (["sample", "b.safetensors", "--device", "potato"], "--device 'potato'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_cli_bad_option_values(argv, needle, capsys, tmp_path):
    out = ["--out", str(tmp_path / "o")] if argv and argv[0] == "train-aae" else []
    code, err = run_cli(argv + out, capsys)
    assert code == 2
    assert_one_line(err, needle)
    assert not (tmp_path / "o").exists()  # nothing was started


def test_cli_out_must_be_a_writable_folder(tmp_path, capsys):
    existing = tmp_path / "file.txt"
    existing.write_text("keep me")
    code, err = run_cli(["train-aae", "--accelerator", "cpu", "--out", str(existing)], capsys)
    assert code == 2
    assert_one_line(err, f"--out {existing} exists and is not a folder")
    assert existing.read_text() == "keep me"
    code, err = run_cli(["train-aae", "--out", str(existing / "sub")], capsys)
    assert code == 2
    assert_one_line(err, "file.txt is not a folder")
    code, err = run_cli(["sample", "b.safetensors", "--out", str(existing)], capsys)
    assert code == 2
    assert_one_line(err, "exists and is not a folder")


def test_cli_unwritable_out(tmp_path, capsys):
    import os
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        try:  # root ignores the mode: fall back to a read-only file system if there is one
            tempfile.TemporaryFile(dir=locked).close()
            target = None
            if os.path.isdir("/sys"):
                try:
                    tempfile.TemporaryFile(dir="/sys").close()
                except OSError:
                    target = "/sys/latentnav-test"
        except OSError:
            target = str(locked / "run")
        if target is None:
            pytest.skip("no unwritable folder available to this user")
        code, err = run_cli(["train-aae", "--accelerator", "cpu", "--out", target], capsys)
        assert code == 2
        assert_one_line(err, f"--out {target}: cannot write in")
    finally:
        locked.chmod(0o700)


def test_cli_gpu_without_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    code, err = run_cli(["train-aae", "--accelerator", "gpu", "--out", str(tmp_path)], capsys)
    assert code == 2
    assert_one_line(err, "--accelerator gpu: no such device is available")
    code, err = run_cli(["sample", "b.safetensors", "--device", "cuda:0"], capsys)
    assert code == 2
    assert_one_line(err, "--device cuda:0: no such CUDA device")


def test_cli_debug_shows_the_traceback(tmp_path):
    from latentnav.cli import main

    argv = ["train-aae", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")]
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        main(["--debug", *argv])
    proc = subprocess.run(
        [sys.executable, "-m", "latentnav.cli", "--debug", *argv], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "latentnav.cli", *argv], capture_output=True)
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr


def test_cli_unexpected_error_is_one_line(tmp_path, capsys, monkeypatch):
    import latentnav.cli as cli

    def boom(args):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(cli, "_run", boom)
    code, err = run_cli(["train-aae", "--out", str(tmp_path)], capsys)
    assert code == 1
    assert_one_line(err, "internal error: RuntimeError: something inside broke second line")
    assert "--debug" in err


@pytest.mark.parametrize(
    "exc,status,needle", [("term", 143, "stopped by SIGTERM"), ("int", 130, "interrupted")]
)
def test_cli_stop_signals_give_128_plus_signum(exc, status, needle, tmp_path, capsys, monkeypatch):
    import signal

    import latentnav.cli as cli
    from latentnav._signals import StopRequested

    def stop(args):
        raise StopRequested(signal.SIGTERM) if exc == "term" else KeyboardInterrupt()

    monkeypatch.setattr(cli, "_run", stop)
    code, err = run_cli(["train-aae", "--out", str(tmp_path)], capsys)
    assert code == status
    assert_one_line(err, needle)


def test_slerp_of_huge_endpoints_is_finite_and_scales():
    """Regression (issue 15): |z| ≈ 1e19 overflowed SLERP's norms in float32 (NaN paths)."""
    from latentnav.interpolation import slerp

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    huge = slerp(a * 1e19, b * 1e19, 0.4)
    assert torch.isfinite(huge).all()
    torch.testing.assert_close(huge / 1e19, slerp(a, b, 0.4), rtol=1e-5, atol=1e-6)
