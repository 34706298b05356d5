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
        if not _said_before(message):  # the same refusal for every run of a sweep is said once here, listed at the end
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


def _said_before(message: str) -> bool:
    """Whether an earlier job of this sweep recorded this message (its launch's .outcomes/)."""
    folder = os.environ.get(OUTCOMES_ENV)
    for path in Path(folder).glob("job*.json") if folder else ():
        try:
            if json.loads(path.read_text()).get("message") == message:
                return True
        except (OSError, ValueError):
            pass
    return False


def swept_keys(config: DictConfig) -> set[str]:
    """The keys a sweep varies: its command line's sweeps (depth=20,56) and a preset's hydra.sweeper.params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}
    return keys | {str(k) for k in (config.hydra.sweeper.get("params") or {})}


def check_data_once(config: DictConfig) -> None:
    """Before any job of a sweep: its data is there, or downloaded once (data.download), or the sweep ends with
    one line (exit 2), not a refusal per run. A sweep of data.root or data.download leaves it to each run."""
    from .config import wants_download
    from .data import DataError, detect_layout, download_cifar10, missing_data_message

    if any(k == "data" or k.startswith(("data.root", "data.download")) for k in swept_keys(config)):
        return
    try:
        root = Path(str(config.data.root)).expanduser()
        download = config.data.download
    except Exception:  # noqa: BLE001 (an interpolation that cannot resolve: each run says so in its own line)
        return
    if detect_layout(root) is not None or download not in ("auto", True, False):
        return
    try:
        if download is True or (download == "auto" and wants_download(config)):
            download_cifar10(root)
        else:
            raise DataError(missing_data_message(root))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def check_not_swept(config: DictConfig, key: str) -> None:
    """A sweep has one folder (out_dir/name: its report, its outcomes), so `-m name=a,b` (or `-m out_dir=a,b`) is
    refused in one line (ConfigError) before any run: it would train into a/ and b/ and report on neither."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # Hydra hands this callback the config without the sweep's own overrides: they are read from the command line.
    given = [a for a in sys.argv[1:] if not a.startswith("-") and a.split("=", 1)[0].lstrip("+~") == key]
    sweeps = []  # the command line's `key=` arguments that sweep (out_dir=x -m out_dir=a,b: the second)
    for argument in given:
        try:
            if OverridesParser.create().parse_overrides([argument])[0].is_sweep_override():
                sweeps.append(argument)
        except Exception:  # noqa: BLE001 (Hydra parsed them once already; a value it cannot reparse is not a sweep)
            pass
    params = config.hydra.get("sweeper", {}).get("params") or {}
    if sweeps or key in params:
        value = sweeps[0].split("=", 1)[1] if sweeps else params[key]
        raise ConfigError(
            f"{key}={value}: a sweep has one folder (out_dir/name), so it cannot sweep over {key}; "
            f"run one sweep per {key} (python run.py -m {key}=a ...; python run.py -m {key}=b ...)"
        )


class SweepSummary(Callback):
    """Prints done / failed / diverged / invalid / stopped / running counts when a sweep ends; exits 1 if any run
    is not done (a run another process trains included: a scheduler must not take the sweep for finished)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # Before Hydra makes the sweep's folder (out_dir/name): a name that would leave out_dir makes nothing.
        try:
            check_name(config.name)
            check_not_swept(config, "name")
            check_not_swept(config, "out_dir")  # the sweep's folder is out_dir/name: one out_dir too
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        check_data_once(config)
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
        # runs refused or failed for one reason are one line: the reason once, the runs named
        by_reason: dict[tuple[str, str], list[str]] = {}
        for r in records:
            if r["state"] != "done":
                by_reason.setdefault((r["state"], r["message"]), []).append(r["run"])
        for (state, message), runs in by_reason.items():
            named = runs[0] if len(runs) == 1 else f"{len(runs)} runs ({', '.join(runs)})"
            print(f"  {state:8s} {named}  {message}")
        if set(counts) - {"done"}:  # failed, invalid, diverged, stopped, or running in another process: not done
            sys.exit(1)
