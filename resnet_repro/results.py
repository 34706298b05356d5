"""Every run under a folder as one tidy pandas DataFrame: one row per (run, step, split)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from .models import resolve_shortcut
from .runs import RunDir

RUN_COLUMNS = ("sweep", "run", "arch", "depth", "shortcut", "seed", "steps", "batch_size", "status")


def find_runs(root: str | os.PathLike) -> list[RunDir]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no runs folder at {root}; give the out_dir (or a sweep folder) that runs were written to")
    runs = []
    # os.walk, not rglob: sweeps may be writing here, and a folder that vanishes mid-walk is skipped, not an error.
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]  # .outcomes, .submitit: no runs in there
        if "config.yaml" in files and "status.json" in files:
            runs.append(RunDir(folder))
    return sorted(runs, key=lambda run: run.path)


def run_info(run: RunDir, root: Path) -> dict:
    cfg = OmegaConf.load(run.config_file)
    relative = run.path.relative_to(root)
    return {
        "sweep": cfg.get("name", relative.parts[0] if len(relative.parts) > 2 else ""),
        "run": str(relative),
        "arch": cfg.arch,
        "depth": int(cfg.depth),
        "shortcut": resolve_shortcut(cfg.arch, cfg.shortcut),
        "seed": int(cfg.seed),
        "steps": int(cfg.steps),
        "batch_size": int(cfg.batch_size),
        "status": run.status().get("state", "unknown"),
    }


def load_runs(root: str | os.PathLike) -> pd.DataFrame:
    """Columns: sweep, run, arch, depth, shortcut, seed, steps, batch_size, status,
    step, split (train/val/test), error, loss, lr, elapsed_s. Runs with no metrics yet are left out."""
    root = Path(root)
    frames = []
    for run in find_runs(root):
        rows = run.read_metrics()
        if rows:
            frame = pd.DataFrame(rows)
            for key, value in run_info(run, root).items():
                frame[key] = value
            frames.append(frame)
    columns = [*RUN_COLUMNS, "step", "split", "error", "loss", "lr", "elapsed_s"]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)[columns]
    return df.astype({"error": float, "loss": float, "lr": float, "elapsed_s": float, "step": int})
