"""Jobs and sweeps: what `run.py` does with each job, and the summary at the end of a sweep.

In a sweep (`-m`), one job's failure never stops its siblings: each job records
its outcome, and the sweep ends with a summary and a non-zero exit if any run
failed. A single run fails loudly instead: a bad setting is one line (exit 2).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import uuid
from collections import Counter
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from .runs import ConfigMismatch, atomic_write
from .train import ConfigError, train

SWEEP_ID_ENV = "RESNET_REPRO_SWEEP_ID"  # set by the sweep, inherited by every job it launches
BAD_INPUT = (ConfigError, ConfigMismatch)


def _outcomes_dir(sweep_dir: str | Path, sweep_id: str) -> Path:
    return Path(sweep_dir) / ".outcomes" / sweep_id


def run_job(cfg: DictConfig) -> str:
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            return train(cfg)
        except BAD_INPUT as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    message = ""
    try:
        state = train(cfg)
    except BAD_INPUT as e:
        state, message = "invalid", str(e)
        print(f"error: {cfg.run_id}: {e}", file=sys.stderr)
    except Exception as e:  # the run directory has the traceback; the siblings go on
        state, message = "failed", f"{type(e).__name__}: {e}"
        traceback.print_exc()
    sweep_id = os.environ.get(SWEEP_ID_ENV)
    if sweep_id:
        record = {"run": cfg.run_id, "state": state, "message": message}
        atomic_write(_outcomes_dir(hydra_cfg.sweep.dir, sweep_id) / f"job{hydra_cfg.job.num}.json", json.dumps(record))
    return state


class SweepSummary(Callback):
    """Prints done / failed / diverged / invalid counts when a sweep ends; exits 1 if any failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        os.environ[SWEEP_ID_ENV] = uuid.uuid4().hex[:12]

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        folder = _outcomes_dir(config.hydra.sweep.dir, os.environ.get(SWEEP_ID_ENV, "none"))
        records = [json.loads(p.read_text()) for p in sorted(folder.glob("job*.json"))]
        counts = Counter(r["state"] for r in records)
        print(f"\nsweep {config.hydra.sweep.dir}: {len(records)} runs: "
              + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))  # fmt: skip
        for r in records:
            if r["state"] in ("failed", "invalid", "diverged"):
                print(f"  {r['state']:8s} {r['run']}  {r['message']}")
        if counts["failed"] or counts["invalid"]:
            sys.exit(1)
