"""How a run stops when asked: SIGTERM (a scheduler's preemption, `kill`) and Ctrl-C both stop it at the
end of the current step, which RunRecorder (train.py) checkpoints; the run's status says "stopped" at
that step, one line says how to resume, and the process exits as one killed by the signal (143, 130),
so a shell or a scheduler never takes a stopped run for a finished one.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from .runs import RunDir


class CtrlC:
    """Ctrl-C (SIGINT) during training stops the run as SIGTERM does: at the end of the current step, which
    RunRecorder checkpoints. Before training starts (the data, the model) there is nothing to keep, and a
    second Ctrl-C is not to be made to wait: both interrupt at once (KeyboardInterrupt)."""

    def __init__(self):
        self.pressed = False  # Ctrl-C was pressed
        self.training = False  # set by RunRecorder once training has started
        self.previous = None

    def _on_sigint(self, signum, frame):
        self.pressed = True
        if not self.training:
            raise KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def say_stopped(run: RunDir, signum: int):
    """One line: where the run stopped and how to go on; then exit as a process killed by `signum` does."""
    status = run.status() if run.path.is_dir() else {}
    if status.get("state") == "running" and status.get("pid") == os.getpid():
        # Interrupted mid-step (a second Ctrl-C): the checkpoint at the status's step is where it stopped.
        run.set_status("stopped", step=status["step"], steps=status["steps"], signal=signal.Signals(signum).name)
        status = run.status()
    where = f"stopped at step {status['step']}" if status.get("state") == "stopped" else "stopped before training"
    print(f"[stopped] {run.path}: {where}; run the same command to resume", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum) from None
