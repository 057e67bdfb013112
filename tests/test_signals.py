"""graceful_stop: SIGTERM/SIGINT sent by a real process to itself become StopRequested with
the signal number (also out of Lightning's Trainer.fit); later signals are ignored; handlers are
restored."""

import signal
import subprocess
import sys
import textwrap

import pytest

from latentnav._signals import StopRequested, graceful_stop


def run_script(body: str) -> subprocess.CompletedProcess:
    code = "import os, signal, sys, time\nfrom latentnav._signals import *\n" + textwrap.dedent(
        body
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_becomes_stop_requested_and_handlers_come_back(signum, status):
    proc = run_script(
        f"""
        before = signal.getsignal({int(signum)})
        try:
            with graceful_stop() as state:
                os.kill(os.getpid(), {int(signum)})
                time.sleep(5)
                print("not interrupted")
        except StopRequested as err:
            print("caught", err.signum, state.signum, err)
            assert signal.getsignal({int(signum)}) is before, "handler not restored"
            sys.exit(err.exit_status)
        """
    )
    assert proc.returncode == status, proc.stderr
    name = signal.Signals(signum).name
    assert proc.stdout.split() == [
        "caught",
        str(int(signum)),
        str(int(signum)),
        "stopped",
        "by",
        name,
    ]


def test_second_signal_does_not_cut_the_cleanup_short():
    proc = run_script(
        """
        with graceful_stop() as state:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except StopRequested:
                os.kill(os.getpid(), signal.SIGTERM)  # e.g. a scheduler that sends it twice
                time.sleep(0.2)
                print("cleanup finished", state.signum)
        # outside the block SIGTERM has its default action again: the process dies of it
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("still alive")
        """
    )
    assert proc.stdout.split() == ["cleanup", "finished", str(int(signal.SIGTERM))]
    assert proc.returncode == -signal.SIGTERM


def test_record_only_mode_lets_a_loop_stop_at_a_safe_point():
    proc = run_script(
        """
        with graceful_stop(raise_on_signal=False) as state:
            for step in range(1000):
                if step == 3:
                    os.kill(os.getpid(), signal.SIGINT)
                if state.requested:
                    break
                time.sleep(0.01)
        print("stopped at", step, state.signum)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["stopped", "at", "3", str(int(signal.SIGINT))]


def test_stop_requested_leaves_lightning_fit_with_its_signal():
    proc = run_script(
        """
        import lightning as L, torch
        class Tiny(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(2, 1)
            def training_step(self, batch, i):
                if self.global_step == 3:
                    os.kill(os.getpid(), signal.SIGTERM)
                return self.layer(batch[0]).square().mean()
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 2)))
        trainer = L.Trainer(max_epochs=5, accelerator="cpu", logger=False,
                            enable_progress_bar=False, enable_checkpointing=False,
                            enable_model_summary=False)
        try:
            with graceful_stop():
                trainer.fit(Tiny(), data)
            print("finished", trainer.global_step)
        except StopRequested as err:
            print("stopped", err.signum, trainer.global_step)
            sys.exit(err.exit_status)
        """
    )
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert proc.stdout.split()[-3:] == ["stopped", str(int(signal.SIGTERM)), "3"]


def test_outside_the_main_thread_it_does_nothing():
    import threading

    seen = []

    def worker():
        with graceful_stop() as state:
            seen.append((state.requested, signal.getsignal(signal.SIGTERM)))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [(False, before)]
    assert StopRequested(signal.SIGTERM).exit_status == 143
