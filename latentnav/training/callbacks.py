"""Lightning callbacks that watch a fit: non-finite losses, and an adversarial game gone one-sided.

:class:`NonFiniteLoss` sees every loss a module backpropagates (``on_before_backward``; the
phase's name from the module's ``phases``, e.g. ``("recon", "d_loss", "g_loss")`` for the AAE,
one per backward pass in a step). By default it keeps them on the device and checks them every
``every_n_steps`` batches (default: the trainer's logging interval), before validation and at the
end of every epoch (one host sync each), then stops the fit with :class:`NonFiniteLossError`
naming the first bad loss's global step, epoch, phase and value. With ``skip=True`` it checks
each loss at once (one sync per loss) and, when one is NaN or infinite, skips the optimiser step
that follows (its gradients are dropped, so Adam leaves those parameters and their moments as
they were), with a warning.

:class:`GanBalance` warns (:class:`GanImbalanceWarning`) when D_z's training accuracy (the epoch
mean of ``train/d_acc_real`` and ``train/d_acc_fake``, DESIGN.md §2) stays within ``margin`` of 0
or 1 for ``patience`` consecutive epochs: the discriminator (at 1) or the encoder (at 0) wins
outright and the regularisation phase no longer shapes q(z).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning as L
import torch

from latentnav._validate import check_int, check_real

__all__ = ["NonFiniteLoss", "NonFiniteLossError", "GanBalance", "GanImbalanceWarning"]


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; ``step``, ``epoch``, ``phase`` and ``value`` say which."""

    def __init__(self, step: int, epoch: int, phase: str, value: float):
        self.step, self.epoch, self.phase, self.value = step, epoch, phase, value
        super().__init__(
            f"non-finite loss at global step {step} (epoch {epoch}), phase {phase}: {value}; "
            "training stopped (lower the learning rates, or NonFiniteLoss(skip=True) skips such "
            "steps)"
        )


class GanImbalanceWarning(UserWarning):
    """D_z's training accuracy stayed pinned at 0 or 1."""


def _phase(module: L.LightningModule, index: int) -> str:
    phases = getattr(module, "phases", ())
    return phases[index] if index < len(phases) else f"loss {index}"


class NonFiniteLoss(L.Callback):
    """Stops (or, with ``skip``, skips the step) on a NaN or infinite loss; see the module doc."""

    def __init__(self, every_n_steps: int | None = None, skip: bool = False):
        if every_n_steps is not None:
            check_int(every_n_steps, "every_n_steps", 1)
        self.every_n_steps, self.skip = every_n_steps, bool(skip)
        self.skipped: list[tuple[int, str, float]] = []  # (global step, phase, value)
        self._pending: list[tuple[int, int, str, torch.Tensor]] = []
        self._index, self._batches, self._skip_next = 0, 0, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._index = 0

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        phase, self._index = _phase(pl_module, self._index), self._index + 1
        where = (trainer.global_step, trainer.current_epoch, phase)
        if not self.skip:
            self._pending.append((*where, loss.detach()))
            return
        value = float(loss.detach())
        if not math.isfinite(value):
            self._skip_next = True
            self.skipped.append((where[0], phase, value))
            warnings.warn(
                f"non-finite loss at global step {where[0]} (epoch {where[1]}), phase {phase}: "
                f"{value}; its optimiser step is skipped",
                RuntimeWarning,
                stacklevel=2,
            )

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._skip_next:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None  # Adam skips parameters without a gradient
            self._skip_next = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._batches += 1
        if self._batches >= (self.every_n_steps or trainer.log_every_n_steps):
            self._check()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._check()  # before validation meets the diverged weights

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check()

    def _check(self) -> None:
        pending, self._pending, self._batches = self._pending, [], 0
        if not pending:
            return
        finite = torch.isfinite(torch.stack([loss.float() for *_, loss in pending]))
        if bool(finite.all()):
            return
        step, epoch, phase, loss = pending[int((~finite).nonzero()[0])]
        raise NonFiniteLossError(step, epoch, phase, float(loss))


class GanBalance(L.Callback):
    """Warns when D_z's epoch training accuracy stays within ``margin`` of 0 or 1 for
    ``patience`` consecutive epochs (once per such streak); see the module doc."""

    def __init__(self, patience: int = 5, margin: float = 0.02):
        check_int(patience, "patience", 1)
        check_real(margin, "margin", 0, 0.5, high_open=True)
        self.patience, self.margin = patience, float(margin)
        self.streak, self.side = 0, None

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "side": self.side}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.streak, self.side = state_dict["streak"], state_dict["side"]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        if "train/d_acc_real" not in metrics or "train/d_acc_fake" not in metrics:
            return
        accuracy = 0.5 * float(metrics["train/d_acc_real"] + metrics["train/d_acc_fake"])
        self.observe(accuracy, trainer.current_epoch)

    def observe(self, accuracy: float, epoch: int) -> None:
        """Count an epoch's accuracy; warn when the streak reaches ``patience``."""
        side = 1 if accuracy >= 1 - self.margin else 0 if accuracy <= self.margin else None
        self.streak = (
            self.streak + 1 if side is not None and side == self.side else int(side is not None)
        )
        self.side = side
        if self.streak == self.patience:
            winner = (
                "D_z wins (encoded latents are told from prior samples)"
                if side
                else ("the encoder wins (D_z calls encoded latents prior samples)")
            )
            warnings.warn(
                f"GAN imbalance: D_z training accuracy {accuracy:.3f}, within {self.margin} of "
                f"{side} for {self.patience} epochs up to epoch {epoch}: {winner}; the "
                "regularisation phase no longer shapes q(z) (adjust lr_discriminator / "
                "lr_generator or gradient_penalty)",
                GanImbalanceWarning,
                stacklevel=2,
            )
