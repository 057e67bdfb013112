"""The project's Lightning trainer and the per-device generators its modules draw noise from."""

from __future__ import annotations

import lightning as L
import torch

__all__ = ["make_trainer", "device_generator"]


def make_trainer(
    epochs: int, accelerator: str, log_dir: str | None, progress: bool, **kwargs
) -> L.Trainer:
    """The project's Lightning trainer: one device, CSV log in ``log_dir`` (none without it), no
    checkpoints or sanity steps; ``kwargs`` go to :class:`lightning.Trainer`."""
    logger = L.pytorch.loggers.CSVLogger(log_dir, name="", version="") if log_dir else False
    return L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        **kwargs,
    )


def device_generator(
    current: torch.Generator | None, device: torch.device, seed: int
) -> torch.Generator:
    """``current`` if it lives on ``device``, else a new generator there seeded with ``seed``."""
    if current is None or current.device != device:
        current = torch.Generator(device).manual_seed(seed)
    return current
