"""A run's output folder: complete, or clearly marked incomplete.

A run writes into the staging folder ``RUN.partial`` next to ``RUN``: first ``run_config.json``
(the run's kind, its config, and the command line's options when it came from one), then the
training logs and the resume state (``last.ckpt``, a joint run's ``stage.json`` and
``stage1.safetensors``), then the results. When the run completes, the resume state is removed,
the results are moved into ``RUN`` and ``RUN.partial`` is removed: ``RUN`` only ever holds the
results of complete runs. A run that is stopped, crashes or diverges leaves ``RUN.partial``, which
``--resume RUN`` (:func:`latentnav.runs.resume_run`) continues.

A new run is refused where ``RUN.partial`` exists (resume it, or start over with ``overwrite``)
and where ``RUN`` already holds a run's results (any of :data:`ARTEFACTS`; choose another folder or
``overwrite``). With ``overwrite`` the old staging folder is cleared at the start, and the old
results in ``RUN`` (every name in :data:`ARTEFACTS`; other files are left alone) are removed when
the new run completes, so stale checkpoints are never mixed with a new ``metrics.csv``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentnav._signals import StopRequested, graceful_stop
from latentnav.checkpoint import atomic_path

if TYPE_CHECKING:
    from latentnav.training.resume import LastCheckpoint

__all__ = [
    "RunFolder",
    "RunFolderError",
    "RunStopped",
    "RunPosition",
    "begin_run",
    "stopped",
    "quiet_resume",
    "ARTEFACTS",
    "RESUME_STATE",
    "RUN_FORMAT",
]

RUN_FORMAT = "latentnav.run/1"
RESUME_STATE = ("last.ckpt", "stage.json", "stage1.safetensors", "finetune/last.ckpt")
ARTEFACTS = (
    "run_config.json", "metrics.json", "metrics.csv", "hparams.yaml", "aae.safetensors",
    "bundle.safetensors", "finetune", "reconstructions.png", "latents.png", "discriminator.png",
    "training.png", "score_training.png", "samples.png", *RESUME_STATE,
)  # fmt: skip


class RunFolderError(ValueError):
    """A run folder in a state that does not allow the requested start or resume."""


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class RunFolder:
    """``RUN`` (``out``) and its staging folder ``RUN.partial`` (``staging``)."""

    def __init__(self, out: str | os.PathLike):
        out = Path(out)
        if out.name.endswith(".partial"):  # --resume RUN.partial means RUN
            out = out.with_name(out.name.removesuffix(".partial"))
        if not out.name:
            raise RunFolderError(f"run folder {str(out)!r} has no name")
        self.out = out
        self.staging = out.with_name(out.name + ".partial")

    def _old_results(self) -> list[str]:
        return [name for name in ARTEFACTS if (self.out / name).exists()]

    def check_new(self, overwrite: bool = False) -> None:
        """Refuse a new run where an interrupted or complete one lives (unless ``overwrite``);
        creates nothing."""
        if overwrite:
            if self.staging.exists() and not (self.staging / "run_config.json").is_file():
                if any(self.staging.iterdir()):
                    raise RunFolderError(f"{self.staging} exists and is not a run's staging folder")
            return
        if self.staging.exists():
            raise RunFolderError(
                f"{self.staging} holds an interrupted run: continue it with --resume {self.out}, "
                "or pass --overwrite to start over"
            )
        old = self._old_results()
        if old:
            raise RunFolderError(
                f"{self.out} already holds the results of a run ({', '.join(old[:3])}, ...): "
                "choose a new --out, or pass --overwrite to replace them"
            )

    def create(self, record: dict[str, Any]) -> Path:
        """The staging folder, emptied, holding ``run_config.json`` = ``record``."""
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        _write_json(self.staging / "run_config.json", {"format": RUN_FORMAT, **record})
        return self.staging

    def record(self) -> dict[str, Any]:
        """``run_config.json`` of the interrupted run in the staging folder."""
        path = self.staging / "run_config.json"
        if not path.is_file():
            if self._old_results() and not self.staging.exists():
                raise RunFolderError(f"{self.out} holds a complete run: nothing to resume")
            raise RunFolderError(f"no interrupted run to resume at {self.out} ({path} not found)")
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunFolderError(f"{path} is not valid JSON: {err}") from err
        if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
            raise RunFolderError(f"{path} is not a {RUN_FORMAT} run config")
        return record

    def stage(self) -> dict[str, Any]:
        """``stage.json`` of a joint run ({} before its first stage completes)."""
        path = self.staging / "stage.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def set_stage(self, stage: dict[str, Any]) -> None:
        _write_json(self.staging / "stage.json", stage)

    def finish(self) -> Path:
        """Drop the resume state, move the results into ``out`` (replacing the old results of
        :data:`ARTEFACTS`), remove the staging folder; returns ``out``. A stop signal meanwhile
        is ignored (the run is complete; a half-moved folder would be neither)."""
        with graceful_stop(raise_on_signal=False):
            return self._finish()

    def _finish(self) -> Path:
        for name in RESUME_STATE:
            _remove(self.staging / name)
        if self.out.exists() and not self.out.is_dir():
            raise RunFolderError(f"{self.out} exists and is not a folder")
        if not self.out.exists() or not any(self.out.iterdir()):
            if self.out.exists():
                self.out.rmdir()
            os.replace(self.staging, self.out)
            return self.out
        for name in self._old_results():
            _remove(self.out / name)
        for entry in self.staging.iterdir():
            _remove(self.out / entry.name)
            os.replace(entry, self.out / entry.name)
        self.staging.rmdir()
        return self.out


class RunStopped(StopRequested):
    """A stop signal ended a run; ``out`` is its folder, ``where`` the position ("at epoch 2 step
    54", epochs counted from 0 as in ``metrics.csv``, steps as Lightning's global step: one per
    optimiser step), ``resumable`` whether ``RUN.partial`` can be resumed."""

    def __init__(self, signum: int, out: Path, where: str, resumable: bool):
        super().__init__(signum)
        self.out, self.where, self.resumable = out, where, resumable

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name} {self.where}"


class RunPosition:
    """Where a run is, for :class:`RunStopped`: a label, and the stage's checkpoint callback."""

    def __init__(self) -> None:
        self.label, self.callback = "before training", None

    def enter(self, label: str, callback: LastCheckpoint | None = None) -> None:
        self.label, self.callback = label, callback

    def where(self) -> str:
        at = self.callback and self.callback.stopped_at
        return f"at epoch {at[0]} step {at[1]}{self.label}" if at else self.label


def begin_run(
    folder: RunFolder, kind: str, config: dict[str, Any], resume: bool, overwrite: bool
) -> None:
    """Checks before anything is loaded or created: a new run may start here, or the
    interrupted one has this kind and config (its folder aside)."""
    if not resume:
        folder.check_new(overwrite)
        return
    record = folder.record()
    if record.get("kind") != kind:
        raise RunFolderError(f"{folder.staging} holds a {record.get('kind')!r} run, not {kind!r}")
    stored, given = record["config"], config
    differ = [k for k in given if k != "out_dir" and given[k] != stored.get(k)]
    if differ:
        raise RunFolderError(
            f"the config differs from the interrupted run's in {', '.join(differ)}; "
            f"resume it with its own config (latentnav.runs.resume_run({str(folder.out)!r}))"
        )


def stopped(err: StopRequested, folder: RunFolder, position: RunPosition) -> RunStopped:
    """``err`` as a :class:`RunStopped` of ``folder`` at ``position``."""
    resumable = (folder.staging / "run_config.json").is_file()
    return RunStopped(err.signum, folder.out, position.where(), resumable)


class quiet_resume(warnings.catch_warnings):
    """Hides Lightning's warning that the CSV log of the folder will be replaced: a resumed run's
    :class:`LastCheckpoint` writes the rows so far back."""

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("ignore", message="Experiment logs directory")
