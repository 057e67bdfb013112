"""Run folders are complete or marked: nothing is created before the data loads, a run lives in
RUN.partial until it completes, reruns never mix old and new artefacts, and a figure that fails
to draw costs only itself."""

import json
import signal

import pytest

import latentnav.run_figures
from latentnav.aae import AAE, AAEConfig
from latentnav.cli import main
from latentnav.run_figures import FigureWarning
from latentnav.run_folder import RunFolder, RunFolderError
from latentnav.runs import RunConfig, resume_run, run_config_from_dict, train_aae_run
from latentnav.training import TrainConfig
from latentnav.training.callbacks import NonFiniteLossError

DATA = "lines:size=8,train=120,test=20"


def tiny(out, epochs: int = 1) -> RunConfig:
    return RunConfig(
        data=DATA, out_dir=str(out), accelerator="cpu", compass=None,
        model=AAEConfig(latent_dim=2, hidden=(8,), disc_hidden=(8,)),
        train=TrainConfig(epochs=epochs, batch_size=40),
    )  # fmt: skip


def test_nothing_is_created_before_the_data_loads(tmp_path):
    out = tmp_path / "run"
    config = tiny(out)
    config.data = str(tmp_path / "missing.npz")
    with pytest.raises((FileNotFoundError, ValueError), match="missing.npz"):
        train_aae_run(config, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_complete_run_replaces_its_staging_folder(tmp_path):
    out = tmp_path / "run"
    train_aae_run(tiny(out), progress=False)
    assert not (tmp_path / "run.partial").exists()
    names = {p.name for p in out.iterdir()}
    assert {"aae.safetensors", "metrics.json", "metrics.csv", "run_config.json"} <= names
    assert not names & {"last.ckpt", "stage.json", "stage1.safetensors"}  # resume state dropped
    record = json.loads((out / "run_config.json").read_text())
    assert run_config_from_dict(record["kind"], record["config"]) == tiny(out)
    assert AAE.load(out / "aae.safetensors").latent_dim == 2


def test_a_failed_run_stays_marked_incomplete_and_cannot_be_restarted_blindly(
    tmp_path, monkeypatch
):
    out = tmp_path / "run"
    import latentnav.training.aae as training_aae

    monkeypatch.setattr(
        training_aae, "reconstruction_loss", lambda x_hat, x, kind: (x_hat * float("nan")).sum()
    )
    with pytest.raises(NonFiniteLossError, match="phase recon"):
        train_aae_run(tiny(out), progress=False)
    assert not out.exists()
    assert (tmp_path / "run.partial" / "run_config.json").is_file()
    with pytest.raises(RunFolderError, match="--resume"):
        train_aae_run(tiny(out), progress=False)
    monkeypatch.undo()
    train_aae_run(tiny(out), progress=False, overwrite=True)  # starts over
    assert (out / "aae.safetensors").is_file() and not (tmp_path / "run.partial").exists()
    with pytest.raises(RunFolderError, match="nothing to resume"):
        resume_run(out, progress=False)


def test_rerun_into_a_complete_folder_refuses_or_clears_every_stale_artefact(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for stale in ("bundle.safetensors", "score_training.png", "metrics.csv"):  # an older run
        (out / stale).write_text("old")
    (out / "finetune").mkdir()
    (out / "finetune" / "metrics.csv").write_text("old")
    (out / "notes.txt").write_text("mine")  # not a run's artefact: left alone
    argv = ["train-aae", "--data", DATA, "--latent-dim", "2", "--hidden", "8", "--disc-hidden",
            "8", "--epochs", "1", "--batch-size", "40", "--out", str(out), "--accelerator",
            "cpu", "--compass-steps", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds the results of a run" in err and "--overwrite" in err
    assert (out / "metrics.csv").read_text() == "old" and not (tmp_path / "run.partial").exists()
    assert main([*argv, "--overwrite"]) == 0
    names = {p.name for p in out.iterdir()}
    assert not names & {"bundle.safetensors", "score_training.png", "finetune"}
    assert (out / "metrics.csv").read_text() != "old" and (out / "notes.txt").read_text() == "mine"


def test_a_figure_that_fails_is_skipped_and_the_run_completes(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("Contour levels must be increasing")

    monkeypatch.setattr(latentnav.run_figures, "discriminator_map", broken)
    out = tmp_path / "run"
    with pytest.warns(FigureWarning, match="Contour levels"):
        _, metrics = train_aae_run(tiny(out), progress=False)
    assert (out / "reconstructions.png").is_file() and (out / "training.png").is_file()
    assert not (out / "discriminator.png").exists()
    stored = json.loads((out / "metrics.json").read_text())
    (failure,) = stored["figures_not_drawn"].values()
    assert "Contour levels" in failure and stored == json.loads(json.dumps(metrics))


def test_run_folder_names_and_records():
    assert RunFolder("a/run.partial").out == RunFolder("a/run").out
    assert RunFolder("a/run").staging.name == "run.partial"
    with pytest.raises(RunFolderError, match="no interrupted run"):
        RunFolder("/nonexistent/run").record()


def test_stopped_before_the_first_checkpoint_resumes_from_scratch(tmp_path, monkeypatch):
    import lightning as L
    import torch

    import latentnav.runs
    from latentnav._signals import StopRequested
    from latentnav.runs import RunStopped

    class StopInEpoch0(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 1:
                raise StopRequested(signal.SIGINT)  # as graceful_stop raises it

    reference, _ = train_aae_run(tiny(tmp_path / "reference", epochs=2), progress=False)
    guards = latentnav.runs._guards
    monkeypatch.setattr(latentnav.runs, "_guards", lambda: [*guards(), StopInEpoch0()])
    out = tmp_path / "run"
    with pytest.raises(RunStopped) as info:
        train_aae_run(tiny(out, epochs=2), progress=False)
    stop = info.value
    assert (stop.exit_status, stop.resumable, stop.out) == (130, True, out)
    assert str(stop) == "stopped by SIGINT at epoch 0 step 3"  # batch 1: three optimiser steps
    assert not (tmp_path / "run.partial" / "last.ckpt").exists()
    monkeypatch.undo()
    with pytest.raises(RunFolderError, match="differs .* in train"):
        train_aae_run(tiny(out, epochs=3), progress=False, resume=True)
    resumed, _ = resume_run(out, progress=False)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("field", "value"), [("devices", 0), ("num_nodes", -1), ("strategy", "x")])
def test_run_config_checks_its_parallel_settings(field, value):
    from latentnav.runs import RunConfig

    with pytest.raises(ValueError, match=field):
        RunConfig(**{field: value})


def test_parallel_settings_round_trip_through_the_stored_config():
    from dataclasses import asdict

    from latentnav.runs import RunConfig, run_config_from_dict

    config = RunConfig(devices=2, num_nodes=1, strategy="ddp")
    again = run_config_from_dict("aae", json.loads(json.dumps(asdict(config))))
    assert again.parallel == {"devices": 2, "num_nodes": 1, "strategy": "ddp"}
