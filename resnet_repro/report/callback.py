"""The report at the end of a sweep: a Hydra callback (conf/config.yaml, hydra.callbacks.report)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..devices import analysis_device
from .build import make_report


class ReportCallback(Callback):
    """At the end of a sweep, its report into <sweep dir>/report/ (`report=false` turns it off).

    Any failure is printed in one line and swallowed: the sweep's own summary must still be seen.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if not config.get("report", True):
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        if not any(sweep_dir.glob("**/metrics.csv")):  # every run refused: a report would say only that
            print(f"no report: no run under {sweep_dir} has trained a step")
            return
        try:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            with analysis_device(device, config.trainer.runs_per_gpu) as device:  # a GPU slot of its own
                make_report(sweep_dir, sweep_dir / "report", device=device, command=f"end of sweep {sweep_dir}")
        except Exception as e:  # noqa: BLE001 (the sweep's summary must still be printed)
            print(
                f"report failed ({type(e).__name__}: {e}); retry with: python -m resnet_repro.report {sweep_dir}",
                file=sys.stderr,
            )
