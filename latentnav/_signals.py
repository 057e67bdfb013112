"""Stop signals as an exception: SIGTERM (``timeout``, ``docker stop``, schedulers) and SIGINT
(Ctrl-C) become :class:`StopRequested` carrying the signal number, so a run can write its last
checkpoint and exit with ``128 + signum`` (143 for SIGTERM, 130 for SIGINT).

:class:`StopRequested` derives from ``BaseException`` like ``KeyboardInterrupt`` (``except
Exception`` does not swallow it) but deliberately not from ``KeyboardInterrupt``: Lightning's
``Trainer.fit`` turns a ``KeyboardInterrupt`` into ``sys.exit(1)``, whereas it runs its
``on_exception`` hooks and re-raises any other ``BaseException``, so ``StopRequested`` reaches the
caller of ``fit`` with its signal number.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["StopRequested", "StopState", "graceful_stop"]


class StopRequested(BaseException):
    """A stop signal arrived; ``signum`` is its number, ``exit_status`` the shell's 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@dataclass
class StopState:
    """What :func:`graceful_stop` yields: the first stop signal received (None until then)."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextmanager
def graceful_stop(
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT), raise_on_signal: bool = True
) -> Iterator[StopState]:
    """Within the block, the first of ``signals`` raises :class:`StopRequested` in the main thread
    (or, with ``raise_on_signal=False``, is only recorded in the yielded :class:`StopState`, for
    loops that stop at a safe point); later ones are recorded but ignored, so the code that
    handles the stop (writing the last checkpoint) is not cut short. The previous handlers are
    restored on exit. Outside the main thread, where Python cannot set handlers, it does nothing.
    """
    state = StopState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame) -> None:
        if state.signum is not None:
            return
        state.signum = signum
        if raise_on_signal:
            raise StopRequested(signum)

    previous = {s: signal.getsignal(s) for s in signals}
    try:
        for s in signals:
            signal.signal(s, handler)
        yield state
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
