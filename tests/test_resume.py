"""Kill and resume: a real `latentnav train-aae` / `latentnav train` process gets SIGTERM in the
middle of an epoch (after its first last.ckpt exists), exits 143 (130 for SIGINT) with one line
saying how to resume, and `--resume` ends with exactly the weights and the metrics.csv of an
uninterrupted run (CPU, one thread, so every operation is deterministic: bit-for-bit equality is
expected). The joint run is killed once in each stage: in the joint stage (a subprocess), then,
resumed in this process, by a SIGINT to this process in the fine-tune stage."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import latentnav.training.diffusion as diffusion
from latentnav.cli import main

TINY = [
    "--latent-dim", "2", "--hidden", "16", "--disc-hidden", "8", "--batch-size", "50",
    "--accelerator", "cpu", "--compass-steps", "0", "--no-progress",
]  # fmt: skip
AAE_ARGS = ["--data", "lines:size=8,train=300,test=20", "--epochs", "3", *TINY]
JOINT_ARGS = [
    "--data",
    "lines:size=8,train=600,test=20",
    "--epochs",
    "2",
    *TINY,
    "--score-width",
    "16",
    "--score-blocks",
    "1",
    "--finetune-epochs",
    "3",
]  # fmt: skip  (540 training latents: two fine-tune batches of 256 per epoch)

# The CLI, with a pause after every batch so that a signal lands mid-epoch (numerics untouched).
SLOW_CLI = """
import sys, time
import latentnav.training.aae as aae, latentnav.training.diffusion as diffusion
def slow(original, seconds):
    def hook(self, *args):
        original(self, *args)
        time.sleep(seconds)
    return hook
aae.AAETraining.on_train_batch_end = slow(aae.AAETraining.on_train_batch_end, 0.04)
diffusion.DiffusionTraining.on_train_batch_end = slow(
    diffusion.DiffusionTraining.on_train_batch_end, 0.15)
from latentnav.cli import main
sys.exit(main(sys.argv[1:]))
"""
STOP_LINE = re.compile(
    r"^latentnav (train-aae|train): stopped by (SIGTERM|SIGINT) at epoch (\d+) step (\d+)(.*); "
    r"resume with: latentnav \1 --resume (\S+)$"
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed process: the same reductions, the same bits
    yield
    torch.set_num_threads(threads)


def kill_when(
    argv: list[str], ready: Path, delay: float, signum: int = signal.SIGTERM
) -> tuple[int, str]:
    """Run the slowed CLI, signal it ``delay`` s after ``ready`` appears; (status, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *argv], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while not ready.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ready.is_file(), f"{ready} never appeared"
    time.sleep(delay)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def assert_stopped(status, err, command, out, stage="", signum=signal.SIGTERM) -> tuple:
    assert status == 128 + signum, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith(f"latentnav {command}:")]
    assert len(lines) == 1, err[-3000:]
    match = STOP_LINE.match(lines[0])
    assert match, lines[0]
    assert match.group(2) == signal.Signals(signum).name
    assert match.group(5) == stage and Path(match.group(6)) == out
    assert (out.parent / (out.name + ".partial") / "run_config.json").is_file()
    assert not out.exists()  # the run folder appears only when complete
    return int(match.group(3)), int(match.group(4))


def assert_same_run(a: Path, b: Path, weights: str, logs: list[str]) -> None:
    wa, wb = load_file(a / weights), load_file(b / weights)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    for log in logs:
        assert (a / log).read_text() == (b / log).read_text(), log
    assert not (b / "last.ckpt").exists() and not (b / "stage1.safetensors").exists()


def test_aae_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path, capsys):
    reference, out = tmp_path / "reference", tmp_path / "run"
    assert main(["train-aae", *AAE_ARGS, "--out", str(reference)]) == 0
    status, err = kill_when(
        ["train-aae", *AAE_ARGS, "--out", str(out)], tmp_path / "run.partial" / "last.ckpt", 0.15
    )
    epoch, _ = assert_stopped(status, err, "train-aae", out)
    assert epoch >= 1  # the first epoch's checkpoint existed
    assert main(["train-aae", "--resume", str(out), "--no-progress"]) == 0
    assert '"mmd2"' in capsys.readouterr().out
    assert_same_run(reference, out, "aae.safetensors", ["metrics.csv"])


def test_joint_run_killed_in_each_stage_resumes_to_the_uninterrupted_bundle(
    tmp_path, capsys, monkeypatch
):
    reference, out = tmp_path / "reference", tmp_path / "run"
    partial = tmp_path / "run.partial"
    assert main(["train", *JOINT_ARGS, "--out", str(reference)]) == 0
    status, err = kill_when(["train", *JOINT_ARGS, "--out", str(out)], partial / "last.ckpt", 0.15)
    assert_stopped(status, err, "train", out, " of the joint stage")
    assert not (partial / "stage.json").exists()
    # Resumed here; Ctrl-C (a real SIGINT to this process) after the first batch of fine-tune
    # epoch 1 (of two batches): saves a subprocess, and the position is known exactly.
    finetune = diffusion.DiffusionTraining.on_train_batch_end

    def interrupt(self, outputs, batch, batch_idx):
        finetune(self, outputs, batch, batch_idx)
        if self.current_epoch == 1 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(diffusion.DiffusionTraining, "on_train_batch_end", interrupt)
    capsys.readouterr()
    status = main(["train", "--resume", str(out), "--no-progress"])
    position = assert_stopped(
        status, capsys.readouterr().err, "train", out, " of the fine-tune stage", signal.SIGINT
    )
    assert position == (1, 3)  # epoch 0: steps 0, 1; epoch 1: step 2, then the signal
    assert (partial / "stage1.safetensors").is_file() and (partial / "stage.json").is_file()
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert_same_run(reference, out, "bundle.safetensors", ["metrics.csv", "finetune/metrics.csv"])


def test_resume_refuses_conflicting_options_and_missing_runs(tmp_path, capsys):
    assert main(["train-aae", "--resume", str(tmp_path / "none"), "--no-progress"]) == 2
    assert "no interrupted run to resume" in capsys.readouterr().err
    partial = tmp_path / "run.partial"
    partial.mkdir()
    (partial / "run_config.json").write_text(
        '{"format": "latentnav.run/1", "kind": "aae", "config": {"accelerator": "cpu"}, '
        '"options": {"epochs": 3, "seed": 0}}'
    )
    argv = ["--resume", str(tmp_path / "run"), "--epochs", "5", "--seed", "0", "--no-progress"]
    assert main(["train-aae", *argv]) == 2
    err = capsys.readouterr().err
    assert "--epochs (run: 3)" in err and "--seed" not in err.split("conflict")[-1]
    assert main(["train", *argv]) == 2
    assert "is a 'train-aae' run: use latentnav train-aae" in capsys.readouterr().err


class Payload:
    """Unpickling this calls open(path, "w"): code run by a loader that trusts pickles."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_last_checkpoint_is_refused_without_running_code(tmp_path):
    from latentnav.aae import AAEConfig
    from latentnav.data import ImageDataModule
    from latentnav.runs import build_aae
    from latentnav.training import TrainConfig, fit_aae

    marker, crafted = tmp_path / "code-ran", tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "x": Payload(marker)}, crafted)
    dm = ImageDataModule.from_spec("lines:size=8,train=40,test=10", batch_size=20)
    aae = build_aae(
        AAEConfig(image_shape=(1, 8, 8), latent_dim=2, hidden=(8,), disc_hidden=(8,)), 0
    )
    with pytest.raises(Exception, match="[Ww]eights.only"):
        fit_aae(aae, dm, TrainConfig(epochs=1), "cpu", None, False, ckpt_path=str(crafted))
    assert not marker.exists()
