"""Every run under a folder, read once: its curves and one row per run.

    from resnet_repro.results import load_results, load_runs
    results = load_results("experiments")
    results.curves   # one row per (run, step, split): what load_runs("experiments") returns
    results.runs     # one row per run: identity, state, dataset, provenance, every learned setting

This is the one place that reads run directories as results (config.yaml, status.json,
metrics.csv, dataset.txt, trained_with.json): the report, the claims table, Figure 7 and the
notebook take these frames and never open a run's files again (Figure 7 still loads each run's
final weights, which is its job).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .models import net_name, resolve_shortcut
from .runs import RunDir, RunFileError, configuration, environment_text, run_settings

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


@dataclass(frozen=True)
class Results:
    curves: pd.DataFrame  # CURVE_COLUMNS: one row per (run, step, split); runs with no metrics yet have none
    runs: pd.DataFrame  # RECORD_COLUMNS + the learned settings: one row per run, with metrics or not


def find_runs(root: str | os.PathLike) -> list[RunDir]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no runs folder at {root}; give the out_dir (or a sweep folder) that runs were written to"
        )
    runs = []
    # os.walk, not rglob: sweeps may be writing here, and a folder that vanishes mid-walk is skipped, not an error.
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]  # .outcomes, .submitit: no runs in there
        if "config.yaml" in files and "status.json" in files:
            runs.append(RunDir(folder))
    return sorted(runs, key=lambda run: run.path)


def dataset_label(run: RunDir, cfg: DictConfig) -> str:
    """What the run trained on, as training recorded it (e.g. 'CIFAR-10 (JPEG q75 copy)');
    runs made before training recorded it say so, with where their data was."""
    try:
        return run.dataset_file.read_text().strip()
    except OSError:
        return f"dataset not recorded (data.root={cfg.data.root})"


def read_run(run: RunDir, root: Path) -> tuple[dict, list[dict]]:
    """One run's row (RECORD_COLUMNS and its learned settings) and its metrics rows."""
    try:
        cfg = OmegaConf.load(run.config_file)
    except Exception as e:  # noqa: BLE001 (OSError or any YAML error: one line naming the fix)
        raise RunFileError(
            f"unreadable {run.config_file} ({type(e).__name__}: {e}); restore it, or delete {run.path}"
        ) from None
    metrics = run.read_metrics()
    relative = run.path.relative_to(root)
    shortcut = resolve_shortcut(cfg.arch, cfg.shortcut)
    environments = run.environments()
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
        "status": run.status().get("state", "unknown"),
        "net": net_name(cfg.arch, int(cfg.depth), shortcut),
        "path": str(run.path.resolve()),
        "last_step": max((row["step"] for row in metrics), default=0),
        "dataset": dataset_label(run, cfg),
        "data.root": cfg.data.get("root"),
        "data.cache_dir": cfg.data.get("cache_dir"),
        "environments": environments,
        "trained_with": "; ".join(map(environment_text, environments)) or "not recorded",
        "configuration": json.dumps(configuration(settings), sort_keys=True, default=str),
    }
    return {**settings, **record}, metrics


def load_results(root: str | os.PathLike) -> Results:
    """Every run under `root` (an out_dir, a sweep's folder, or a collected results/<experiment>/runs)."""
    root = Path(root)
    records, frames = [], []
    for run in find_runs(root):
        record, metrics = read_run(run, root)
        records.append(record)
        if metrics:
            frame = pd.DataFrame(metrics)
            for key in RUN_COLUMNS:
                frame[key] = record[key]
            frames.append(frame)
    settings = sorted({k for record in records for k in record} - set(RECORD_COLUMNS))
    runs = pd.DataFrame(records, columns=[*RECORD_COLUMNS, *settings])
    if not frames:
        return Results(pd.DataFrame(columns=CURVE_COLUMNS), runs)
    curves = pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]
    curves = curves.astype({"error": float, "loss": float, "lr": float, "elapsed_s": float, "step": int})
    return Results(curves, runs)


def load_runs(root: str | os.PathLike) -> pd.DataFrame:
    """Columns: sweep, run, arch, depth, shortcut, seed, steps, batch_size, status,
    step, split (train/val/test), error, loss, lr, elapsed_s. Runs with no metrics yet are left out."""
    return load_results(root).curves
