"""How a run shows its progress: a live bar on a terminal, a line every 10% in a job's log.

trainer.progress_bar=auto picks between them (trainer_settings.py): a tqdm bar redraws itself in place on a
terminal, but in a log file (joblib's and submitit's job logs, Slurm's slurm-*.out) each redraw is
a new line, thousands per run. `lines` prints ten. Neither reads a value from the device: the errors
shown are those of the latest log point.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

LINES = 10  # lines per run under progress_bar=lines: one every 10% of its steps


def run_name(trainer) -> str:
    return "/".join(Path(trainer.default_root_dir).parts[-2:])  # e.g. plain-56/seed0


class StepProgressBar(TQDMProgressBar):
    """One bar over the whole run in iterations (the stream is endless, so Lightning's epoch bar has no total)."""

    def on_train_epoch_start(self, trainer, *_):
        super().on_train_epoch_start(trainer)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.initial = trainer.global_step
        bar.set_description(run_name(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n = trainer.global_step
        if self._should_update(n, trainer.max_steps):
            self.train_progress_bar.n = n
            self.train_progress_bar.set_postfix(pl_module.progress, refresh=True)


class ProgressLines(pl.Callback):
    """A line at every 10% of the run's steps: step, errors at the latest log point, speed and time left."""

    def __init__(self, say=lambda line: print(line, flush=True)):
        self.say = say
        self.started, self.first_step = 0.0, 0

    def on_train_start(self, trainer, pl_module):
        self.started, self.first_step = time.monotonic(), trainer.global_step  # a resumed run starts at its step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step, steps = trainer.global_step, trainer.max_steps
        if step * LINES // steps == (step - 1) * LINES // steps and step != steps:
            return  # not at a tenth
        done = step - self.first_step
        seconds = time.monotonic() - self.started
        rate = done / seconds if seconds > 0 else 0.0
        left = f", {_duration((steps - step) / rate)} left" if rate > 0 and step < steps else ""
        errors = "".join(f"{k}={v} " for k, v in pl_module.progress.items())
        percent = 100 * step // steps
        self.say(f"[progress] {run_name(trainer)} step {step}/{steps} ({percent}%) {errors}{rate:.2f} it/s{left}")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m" if minutes else f"{seconds:.0f}s"


def progress_callbacks(progress: str) -> list[pl.Callback]:
    """The callbacks of trainer.progress_bar, resolved: "bar", "lines" or "off"."""
    return {"bar": [StepProgressBar(refresh_rate=10)], "lines": [ProgressLines()], "off": []}[progress]
