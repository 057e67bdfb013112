"""The project's Lightning trainer (one device or DDP over devices and nodes) and the per-device
generators its modules draw noise from."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy

from latentnav._validate import check_choice, check_int

__all__ = ["make_trainer", "device_generator", "STRATEGIES"]


# --strategy names → how Lightning's DDP starts the processes: "popen" re-runs the command once per
# extra device (also what torchrun / SLURM launch); "spawn" and "fork" start them from this process.
START_METHODS: dict[str, str] = {"auto": "popen", "ddp": "popen", "ddp_spawn": "spawn",
                                 "ddp_fork": "fork"}  # fmt: skip
STRATEGIES: tuple[str, ...] = tuple(START_METHODS)


def make_trainer(
    epochs: int,
    accelerator: str,
    log_dir: str | None,
    progress: bool,
    devices: int = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    **kwargs,
) -> L.Trainer:
    """The project's Lightning trainer: ``devices`` processes per node on ``num_nodes`` nodes, CSV
    log in ``log_dir`` (none without it), no checkpoints or sanity steps; ``kwargs`` go to
    :class:`lightning.Trainer`. "auto" is one device when ``devices · num_nodes`` is 1, else DDP;
    every DDP strategy here runs with ``find_unused_parameters=False`` (each phase of the manual
    steps averages its own gradients: :mod:`latentnav.training.distributed`). Batch sizes stay
    per device: the global batch is ``batch_size · devices · num_nodes``."""
    check_int(devices, "devices", 1)
    check_int(num_nodes, "num_nodes", 1)
    check_choice(strategy, "strategy", STRATEGIES)
    engine: str | DDPStrategy = "auto"
    if strategy != "auto" or devices * num_nodes > 1:
        engine = DDPStrategy(find_unused_parameters=False, start_method=START_METHODS[strategy])
    logger = L.pytorch.loggers.CSVLogger(log_dir, name="", version="") if log_dir else False
    return L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=engine,
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
