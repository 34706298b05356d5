"""Every run under a folder, read once: its curves, one row per run, and the runs it had to leave out.

    from resnet_repro.results import load_results, load_runs
    results = load_results("experiments")
    results.curves   # one row per (run, step, split): what load_runs("experiments") returns
    results.runs     # one row per run: identity, state, dataset, provenance, every learned setting
    results.skipped  # the damaged runs left out: which file, what is wrong with it, the fix

This is the one place that reads run directories as results (config.yaml, status.json,
metrics.csv, dataset.txt, trained_with.json): the report, the claims table, Figure 7 and the
notebook take these frames and never open a run's files again (Figure 7 still loads each run's
final weights, which is its job).

One damaged run never stops the reading: a run whose file is missing, unreadable or holds a
value that is not what training writes is left out whole (a half-read run would pass for a
healthy one) and listed in `skipped`; `load_runs`, which returns a bare frame, warns instead
(`DamagedRunWarning`).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .models import Net, net_name, resolve_shortcut
from .runs import STATES, RunDir, RunFileError, configuration, run_settings
from .trained_with import environment_text, parse_environment_text

# What a curve row says about its run; then the metric columns.
RUN_COLUMNS = ("sweep", "run", "arch", "depth", "shortcut", "seed", "steps", "batch_size", "status")
CURVE_COLUMNS = (*RUN_COLUMNS, "step", "split", "error", "loss", "lr", "elapsed_s")
# A per-run row: RUN_COLUMNS, then these, then one column per learned setting (runs.run_settings' keys,
# e.g. "optim.lr", "data.val_size").
RECORD_COLUMNS = (
    *RUN_COLUMNS,
    "net",  # as a user types it: plain-56, resnet-110, resnet-56-B
    "path",  # the run's folder, absolute
    "last_step",  # the last step in metrics.csv; 0: nothing logged yet
    "dataset",  # what it trained on, as training recorded it: "CIFAR-10 (JPEG q75 copy)"
    "data.root",  # where its data was (may have moved since)
    "data.cache_dir",
    "environments",  # trained_with.json: one dict per environment it trained in (code, precision, device, ...)
    "trained_with",  # the same, as text: "code c0ffee, bf16-mixed on cpu, torch 2.14.1; ..."
    "configuration",  # its learned settings but the seed, as JSON: runs with equal ones are seeds of one curve
)
# A folder holding any of these holds a run, or what is left of one. config.yaml alone does not: a run
# writes it first, so a folder with nothing else is a run starting this moment (or one refused before it began).
RUN_FILES = ("status.json", "metrics.csv", "last.ckpt", "weights.pt")


class DamagedRunWarning(UserWarning):
    """`load_runs` left out runs it could not read (`load_results(root).skipped` lists them)."""


@dataclass(frozen=True)
class SkippedRun:
    """A run left out because one of its files is missing or damaged."""

    run: str  # its folder, relative to the folder read
    file: str  # the file at fault: config.yaml, status.json, metrics.csv, trained_with.json, dataset.txt
    reason: str  # one line: the file's path, what is wrong with it, the fix

    def __str__(self) -> str:
        return f"{self.run}: {self.reason}"


class DamagedFile(RunFileError):
    def __init__(self, file: str, reason: str):
        super().__init__(reason)
        self.file = file


@dataclass(frozen=True)
class Results:
    curves: pd.DataFrame  # CURVE_COLUMNS: one row per (run, step, split); runs with no metrics yet have none
    runs: pd.DataFrame  # RECORD_COLUMNS + the learned settings: one row per run, with metrics or not
    skipped: list[SkippedRun] = field(default_factory=list)  # damaged runs, in neither frame


def find_runs(root: str | os.PathLike) -> list[RunDir]:
    """Every folder under `root` holding a run's files (RUN_FILES), healthy or not."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no runs folder at {root}; give the out_dir (or a sweep folder) that runs were written to"
        )
    runs = []
    # os.walk, not rglob: sweeps may be writing here, and a folder that vanishes mid-walk is skipped, not an error.
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]  # .outcomes, .submitit: no runs in there
        if any(name in files for name in RUN_FILES):
            runs.append(RunDir(folder))
    return sorted(runs, key=lambda run: run.path)


# ---- each file of a run, read and checked: a DamagedFile names the file, what is wrong and the fix
def read_config(run: RunDir) -> DictConfig:
    if not run.config_file.is_file():
        raise DamagedFile("config.yaml", f"no {run.config_file}; restore it, or delete {run.path}")
    try:
        cfg = OmegaConf.load(run.config_file)
    except Exception as e:  # noqa: BLE001 (OSError or any YAML error: one line naming the fix)
        raise DamagedFile(
            "config.yaml", f"unreadable {run.config_file} ({_first_line(e)}); restore it, or delete {run.path}"
        ) from None
    if not isinstance(cfg, DictConfig):
        raise DamagedFile("config.yaml", f"{run.config_file} is not a run's config; restore it, or delete {run.path}")
    return cfg


# A run_id as the config names it by default (run_id: ${run_name:...}/seed${seed}): plain-20/seed0, resnet-56-B/seed1
DEFAULT_RUN_ID = re.compile(r"(plain|resnet)-\d+(-[\w]+)*/seed\d+")


def check_names_its_net(run: RunDir, cfg: DictConfig) -> None:
    """A config whose net or seed is not the one its run was made as (its run_id, the run's folder) was changed
    after the run: its numbers would be reported as another net's (a depth edited by hand: plain-20 as plain-56)."""
    run_id = cfg.get("run_id")
    if not isinstance(run_id, str) or not DEFAULT_RUN_ID.fullmatch(run_id):  # a run_id= of one's own: no rule
        return
    try:
        Net.of(cfg.arch, cfg.depth, cfg.shortcut, cfg.get("block"))  # a net at all (else read_run says what is wrong)
        named = f"{net_name(cfg.arch, cfg.depth, cfg.shortcut, cfg.get('block'))}/seed{int(cfg.seed)}"
    except Exception:  # noqa: BLE001 (a key missing, a depth that is not a number: read_run says so)
        return
    if named != run_id:
        raise DamagedFile(
            "config.yaml",
            f"{run.config_file} describes {named}, but the run was made as {run_id} (its run_id): its settings "
            f"were changed after it trained; restore them, or delete {run.path}",
        )


def read_status(run: RunDir) -> dict:
    if not run.status_file.is_file():
        fix = "run its command again to resume it (that rewrites it), or delete the folder"
        raise DamagedFile("status.json", f"no {run.status_file}; {fix}")
    try:
        status = run.status()
    except RunFileError as e:
        raise DamagedFile("status.json", str(e)) from None
    if not isinstance(status, dict) or status.get("state") not in STATES:
        state = status.get("state") if isinstance(status, dict) else status
        raise DamagedFile(
            "status.json",
            f"{run.status_file} holds state {state!r}, not one of {', '.join(STATES)}; delete it to let the run resume",
        )
    return status


def read_metrics(run: RunDir) -> list[dict]:
    try:
        return run.read_metrics()  # every row checked: numbers, finite, splits, steps in order
    except RunFileError as e:
        raise DamagedFile("metrics.csv", str(e)) from None


def log_points(steps: int, eval_every: int, log_every: int) -> tuple[set[int], set[int]]:
    """The steps training logs at, and those it evaluates at (train.RunRecorder's rule): every
    log_every-th and eval_every-th step and the last; val and test only at eval_every-th steps and the last."""
    evaluated = {*range(eval_every, steps + 1, eval_every), steps}
    return evaluated | set(range(log_every, steps + 1, log_every)), evaluated


def check_metrics(run: RunDir, cfg: DictConfig, status: dict, metrics: list[dict]) -> None:
    """metrics.csv agrees with the run's config and status, or DamagedFile: one row per (step, split), only
    at the steps training logs at, none of them missing up to the last, and a `done` run's last at `steps`.
    A row duplicated or rows cut off would otherwise pass for a final error."""
    try:
        steps, eval_every = int(cfg.steps), int(cfg.eval_every)
        log_every = int(cfg.get("log_every", eval_every))  # runs made before log_every logged at eval_every
        val_size = int(cfg.data.val_size)
    except Exception:  # noqa: BLE001 (read_run says what is wrong with the config)
        return
    state = status["state"]
    logged, evaluated = log_points(steps, eval_every, log_every)
    fix = f"restore it, or delete {run.path} to retrain the run"
    where = f"{run.metrics_file} (steps={steps}, eval_every={eval_every}, log_every={log_every} in config.yaml)"

    def damaged(problem: str):
        return DamagedFile("metrics.csv", f"{where}: {problem}; {fix}")

    rows: dict[int, list[str]] = {}
    last_step = metrics[-1]["step"] if metrics else None
    for row in metrics:
        step, split = row["step"], row["split"]
        # a NaN or inf training loss is how a run records its divergence (training stops there): at a diverged
        # run's last step, nowhere else (an evaluation's loss may overflow in a run that goes on)
        diverges = split == "train" and not math.isfinite(float(row["loss"]))
        if diverges and not (state in ("diverged", "running") and step == last_step):  # running: being marked
            raise damaged(f"a train row at step {step} with loss={row['loss']}, but the run is {state}, not diverged")
        if step not in logged:
            raise damaged(f"a row at step {step}, which training does not log at")
        if split in rows.setdefault(step, []):
            raise damaged(f"two {split} rows at step {step}")
        if split != "train" and step not in evaluated:
            raise damaged(f"a {split} row at step {step}, which is not an evaluation step")
        if split == "val" and val_size == 0:
            raise damaged(f"a val row at step {step}, but data.val_size=0 holds out no images")
        rows[step].append(split)
    last = max(rows, default=0)
    missing = sorted(s for s in logged if s <= last and s not in rows)
    if missing:
        raise damaged(f"no rows at step {missing[0]}{' and others' if len(missing) > 1 else ''}: rows are missing")
    with_val = [s for s in sorted(evaluated) if s in rows and "val" in rows[s]]
    for step, splits in rows.items():
        final_of_diverged = state == "diverged" and step == last  # its last log point: training error alone
        if "train" not in splits:
            raise damaged(f"no train row at step {step}")
        if step in evaluated and not final_of_diverged:
            if "test" not in splits:
                raise damaged(f"no test row at step {step}, an evaluation step")
            if with_val and "val" not in splits:  # runs written by hand may have none; a run has them all
                raise damaged(f"no val row at step {step}, an evaluation step")
    if state == "done" and last != steps:
        raise damaged(f"the run is done but its rows end at step {last}, not {steps}: rows are missing")
    step = status.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise DamagedFile(
            "status.json", f"{run.status_file} says step {step!r}, not a whole number; delete it to let the run resume"
        )
    if state == "done" and step not in (None, steps):
        raise DamagedFile(
            "status.json",
            f"{run.status_file} says done at step {step}, but the run has steps={steps}; delete it to let the run resume",
        )


def read_environments(run: RunDir) -> list[dict]:
    """trained_with.json (or an old run's trained_with.txt) as a list of dicts; [] if neither was written."""
    fix = "restore it, or delete it (the run's provenance then reads 'not recorded')"
    for path in (run.trained_with_file, run.trained_with_text_file):
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:  # ValueError: bytes that are not UTF-8
            raise DamagedFile(path.name, f"unreadable {path} ({_first_line(e)}); {fix}") from None
        if path == run.trained_with_text_file:
            return [parse_environment_text(line) for line in text.splitlines() if line.strip()]
        try:
            environments = json.loads(text)
        except ValueError as e:
            raise DamagedFile(path.name, f"unreadable {path} ({_first_line(e)}); {fix}") from None
        if not isinstance(environments, list) or not all(isinstance(e, dict) for e in environments):
            raise DamagedFile(path.name, f"{path} is not a list of environments; {fix}")
        return environments
    return []


def read_dataset(run: RunDir, cfg: DictConfig) -> str:
    """What the run trained on, as training recorded it (e.g. 'CIFAR-10 (JPEG q75 copy)'); runs made
    before training recorded it say so, with where their data was."""
    try:
        return run.dataset_file.read_text().strip()
    except FileNotFoundError:
        return f"dataset not recorded (data.root={OmegaConf.select(cfg, 'data.root')})"
    except (OSError, ValueError) as e:
        fix = "restore it, or delete it (the run's data then reads 'not recorded')"
        raise DamagedFile("dataset.txt", f"unreadable {run.dataset_file} ({_first_line(e)}); {fix}") from None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def read_run(run: RunDir, root: Path) -> tuple[dict, list[dict]]:
    """One run's row (RECORD_COLUMNS and its learned settings) and its metrics rows; DamagedFile if a file is."""
    cfg = read_config(run)
    check_names_its_net(run, cfg)
    status = read_status(run)
    metrics = read_metrics(run)
    check_metrics(run, cfg, status, metrics)
    environments = read_environments(run)
    dataset = read_dataset(run, cfg)
    relative = run.path.relative_to(root)
    try:
        shortcut = resolve_shortcut(cfg.arch, cfg.shortcut)
        settings = run_settings(cfg)
        record = {
            "sweep": cfg.get("name", relative.parts[0] if len(relative.parts) > 2 else ""),
            "run": str(relative),
            "arch": cfg.arch,
            "depth": int(cfg.depth),
            "shortcut": shortcut,
            "seed": int(cfg.seed),
            "steps": int(cfg.steps),
            "batch_size": int(cfg.batch_size),
            "status": status["state"],
            "net": net_name(cfg.arch, int(cfg.depth), shortcut, settings["block"]),
            "path": str(run.path.resolve()),
            "last_step": max((row["step"] for row in metrics), default=0),
            "dataset": dataset,
            "data.root": cfg.data.get("root"),
            "data.cache_dir": cfg.data.get("cache_dir"),
            "environments": environments,
            "trained_with": "; ".join(map(environment_text, environments)) or "not recorded",
            "configuration": json.dumps(configuration(settings), sort_keys=True, default=str),
        }
    except Exception as e:  # noqa: BLE001 (a key missing, a depth that is not a number, an arch unknown: any)
        reason = f"{run.config_file} does not describe a run ({type(e).__name__}: {_first_line(e)}); restore it, or delete {run.path}"
        raise DamagedFile("config.yaml", reason) from None
    return {**settings, **record}, metrics


def load_results(root: str | os.PathLike) -> Results:
    """Every run under `root` (an out_dir, a sweep's folder, or a collected results/<experiment>/runs);
    the damaged ones are left out and listed in `Results.skipped`."""
    root = Path(root)
    records, frames, skipped = [], [], []
    for run in find_runs(root):
        try:
            record, metrics = read_run(run, root)
        except DamagedFile as e:
            skipped.append(SkippedRun(str(run.path.relative_to(root)), e.file, str(e)))
            continue
        records.append(record)
        if metrics:
            frame = pd.DataFrame(metrics)
            for key in RUN_COLUMNS:
                frame[key] = record[key]
            frames.append(frame)
    settings = sorted({k for record in records for k in record} - set(RECORD_COLUMNS))
    runs = pd.DataFrame(records, columns=[*RECORD_COLUMNS, *settings])
    if not frames:
        return Results(pd.DataFrame(columns=CURVE_COLUMNS), runs, skipped)
    curves = pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]
    curves = curves.astype({"error": float, "loss": float, "lr": float, "elapsed_s": float, "step": int})
    return Results(curves, runs, skipped)


def load_runs(root: str | os.PathLike) -> pd.DataFrame:
    """Columns: sweep, run, arch, depth, shortcut, seed, steps, batch_size, status,
    step, split (train/val/test), error, loss, lr, elapsed_s. Runs with no metrics yet are left out;
    so are damaged runs, with a DamagedRunWarning naming each (`load_results(root).skipped` has them)."""
    results = load_results(root)
    if results.skipped:
        lines = "\n".join(f"  {s}" for s in results.skipped)
        warnings.warn(
            f"load_runs left out {len(results.skipped)} damaged run(s) under {root}:\n{lines}",
            DamagedRunWarning,
            stacklevel=2,
        )
    return results.curves
