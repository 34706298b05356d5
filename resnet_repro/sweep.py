"""Jobs and sweeps: what `run.py` does with each job, and the summary at the end of a sweep.

In a sweep (`-m`), one job's failure never stops its siblings: each job records
its outcome, and the sweep ends with a summary and a non-zero exit if any run
failed or was refused. A single run fails loudly instead: a bad setting is one
line (exit 2). SIGTERM or Ctrl-C stops a sweep as it stops a run: the job on hand
keeps its step, and the rest wait for the same command again.

The outcomes travel through files, not return values, because the launchers
(joblib's worker processes, submitit's local processes and Slurm jobs) run the
jobs in other processes; only the environment and the file system are shared.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from .config import ConfigError, check_name, resolve
from .runs import ConfigMismatch, RunDir, RunFileError, atomic_write, status_text
from .train import train

# The folder where this sweep's jobs write their outcomes: set when the sweep starts, inherited by
# every job it launches (joblib and submitit start their processes with this environment; sbatch
# passes it on). Its own folder per sweep, so two sweeps into one out_dir at once keep theirs apart.
# The folders are kept, a record of each launch: deleting a folder could break a reader walking the tree.
OUTCOMES_ENV = "RESNET_REPRO_OUTCOMES"
BAD_INPUT = (ConfigError, ConfigMismatch, RunFileError)
# Exit codes of a single run: 0 done, 1 failed (a traceback), 2 refused (bad input, one line), 3 diverged,
# 130 stopped by Ctrl-C, 143 stopped by SIGTERM (both resumable). A sweep exits 1 if any of its runs is not done.
EXIT_DIVERGED = 3


def run_job(cfg: DictConfig) -> str:
    """One job of `run.py`: resolve its config (every setting checked before any work), then train."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            state = train(resolve(cfg))
        except BAD_INPUT as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        if state == "diverged":  # a scheduler or a script must not count it as a success
            reason = RunDir(cfg.run_dir).status().get("reason", "")
            print(
                f"diverged: {cfg.run_dir}: {reason}; delete the directory to retry (e.g. with a lower optim.lr)",
                file=sys.stderr,
            )
            sys.exit(EXIT_DIVERGED)
        return state
    message = ""
    try:
        state = train(resolve(cfg))
        if state == "diverged":
            message = RunDir(cfg.run_dir).status().get("reason", "")
        elif state == "running":  # its status says which process, and whether that process still runs
            message = f"being trained by another process; its status: {status_text(RunDir(cfg.run_dir).status())}"
    except BAD_INPUT as e:
        state, message = "invalid", str(e)
        print(f"error: {cfg.run_id}: {e}", file=sys.stderr)
    except SystemExit:  # stopped by SIGTERM or Ctrl-C, checkpointed: recorded, and the sweep stops with it
        _record(cfg, "stopped", status_text(RunDir(cfg.run_dir).status()) + "; run the same command to resume")
        raise
    except Exception as e:  # noqa: BLE001 (the run directory has the traceback; the siblings go on)
        state, message = "failed", f"{type(e).__name__}: {e}"
        traceback.print_exc()
    _record(cfg, state, message)
    return state


def _record(cfg: DictConfig, state: str, message: str) -> None:
    """Leave this job's outcome where the sweep's summary reads it."""
    folder = os.environ.get(OUTCOMES_ENV)
    if folder:
        record = {"run": cfg.run_id, "state": state, "message": message}
        atomic_write(Path(folder) / f"job{HydraConfig.get().job.num}.json", json.dumps(record))


class SweepSummary(Callback):
    """Prints done / failed / diverged / invalid / stopped counts when a sweep ends; exits 1 if any run
    failed, diverged, was invalid or was stopped."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # Before Hydra makes the sweep's folder (out_dir/name): a name that would leave out_dir makes nothing.
        try:
            check_name(config.name)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        launch = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        folder = Path(str(config.hydra.sweep.dir)).resolve() / ".outcomes" / launch
        os.environ[OUTCOMES_ENV] = str(folder)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        folder = Path(os.environ.pop(OUTCOMES_ENV))
        records = [json.loads(p.read_text()) for p in sorted(folder.glob("job*.json"), key=lambda p: int(p.stem[3:]))]
        counts = Counter(r["state"] for r in records)
        print(
            f"\nsweep {config.hydra.sweep.dir}: {len(records)} runs: "
            + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        )
        for r in records:
            if r["state"] != "done":
                print(f"  {r['state']:8s} {r['run']}  {r['message']}")
        if counts["failed"] or counts["invalid"] or counts["diverged"] or counts["stopped"]:
            sys.exit(1)
