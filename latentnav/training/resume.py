"""Exact resumption of a Lightning fit: the ``last.ckpt`` written at every epoch boundary, and the
generator states the training modules store in it.

``last.ckpt`` is Lightning's own checkpoint (weights, every optimiser and LR-scheduler state, the
loops' epoch and step counters, the callbacks' states, the modules' generator states). It is
written atomically (temp file + rename, :class:`latentnav.checkpoint.atomic_path`) at the start of
every epoch after the first, i.e. at the end of the previous one once its scheduler steps and logs
are done, and at the end of training. It is read back with ``weights_only=True``
(``trainer.fit(..., ckpt_path=path, weights_only=True)``): plain tensors, numbers and strings,
nothing in the file is executed. Together with a train loader whose order is a function of
(seed, epoch) (:class:`latentnav.data.EpochShuffle`), a fit resumed from ``last.ckpt`` goes on
exactly as the uninterrupted one: same batches, same noise, same weights.

A stop mid-epoch loses the part of that epoch done so far: the resumed fit redoes it from the
epoch's start (saving mid-epoch would not be exact with a plain DataLoader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from latentnav.checkpoint import atomic_path

__all__ = ["LastCheckpoint", "generator_state", "restore_generator", "LAST_CHECKPOINT"]

LAST_CHECKPOINT = "last.ckpt"


def generator_state(generator: torch.Generator | None) -> dict[str, Any] | None:
    """``{"device", "state"}`` of ``generator`` for a checkpoint (None for None)."""
    if generator is None:
        return None
    return {"device": str(generator.device), "state": generator.get_state()}


def restore_generator(saved: dict[str, Any] | None) -> torch.Generator | None:
    """The generator :func:`generator_state` described, on its device (None for None)."""
    if saved is None:
        return None
    generator = torch.Generator(saved["device"])
    generator.set_state(saved["state"])
    return generator


class LastCheckpoint(L.Callback):
    """Writes ``folder/last.ckpt`` atomically at each epoch boundary and at the end of training.

    A plain callback (``make_trainer`` turns Lightning's checkpointing off, and with it every
    ``Checkpoint`` subclass); Lightning restores its state on resume. Its state carries the CSV
    log written so far (``metrics.csv``), which Lightning's CSV logger deletes when a fit starts,
    so a resumed run's log continues the interrupted one without the rows of a redone epoch.
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LAST_CHECKPOINT
        self.saved_at: tuple[int, int] | None = None  # (epoch, global step) of the last write
        self.stopped_at: tuple[int, int] | None = None  # where an exception ended the fit
        self._csv: str | None = None  # metrics.csv of the checkpoint resumed from

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    def state_dict(self) -> dict[str, Any]:
        return {"metrics_csv": self._csv_text()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._csv = state_dict.get("metrics_csv")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = trainer.logger  # the CSV log lives on rank 0 only (DDP)
        csv = isinstance(logger, L.pytorch.loggers.CSVLogger) and trainer.is_global_zero
        self._logger = logger if csv else None

    def _csv_text(self) -> str | None:
        if getattr(self, "_logger", None) is None:
            return None
        self._logger.save()  # flush the rows held in memory
        path = Path(self._logger.experiment.metrics_file_path)
        return path.read_text() if path.is_file() else None

    def save(self, trainer: L.Trainer) -> None:
        """Write the checkpoint of the current position (temp file, then rename)."""
        position = (trainer.current_epoch, trainer.global_step)
        if position == self.saved_at:
            return
        if trainer.is_global_zero:
            with atomic_path(self.path) as tmp:
                trainer.save_checkpoint(tmp, weights_only=False)
        else:  # other DDP ranks write nothing but must join save_checkpoint's barrier
            trainer.save_checkpoint(self.path, weights_only=False)
        self.saved_at = position

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        # Saved in on_train_epoch_start, after Lightning counted the new epoch as "ready" but
        # before it starts: record the boundary itself (every counter at the epochs completed),
        # which Lightning resumes as a fresh epoch; its "restarted on epoch start" path would
        # take the previous epoch's batch counters for this one's and skip it.
        progress = checkpoint["loops"]["fit_loop"]["epoch_progress"]
        for tracker in (progress["total"], progress["current"]):
            tracker["ready"] = tracker["started"] = tracker["processed"] = tracker["completed"]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._csv and self._logger is not None:  # resumed: the log so far, then new rows
            writer = self._logger.experiment
            Path(writer.metrics_file_path).write_text(self._csv)
            writer.metrics_keys = self._csv.splitlines()[0].split(",")
        self._csv = None
        self.saved_at = (trainer.current_epoch, trainer.global_step)  # nothing new to save yet

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch > 0:
            self.save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception) -> None:
        self.stopped_at = (trainer.current_epoch, trainer.global_step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)
