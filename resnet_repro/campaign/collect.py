"""Finished runs into results/<experiment>/runs/ (their record and final weights, never a checkpoint), then
per experiment the report and RUN.md: how the results were made, on which machines, under which commits."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..runs import RunDir
from ..trained_with import environment_text
from .progress import hours, progress
from .store import Campaign, CampaignError, Run

# The files that make a run's record in results/; last.ckpt stays out (its weights alone are kept).
RECORD_FILES = ("config.yaml", "status.json", "metrics.csv", "dataset.txt", "trained_with.txt", "trained_with.json")


def copy_record(campaign: Campaign, run: Run, results_dir: Path) -> Path:
    """A finished run's record into <results>/<experiment>/runs/<run_id>/: its files and final weights.
    An existing copy that differs is never overwritten (CampaignError)."""
    source = campaign.run_dir(run)
    target = results_dir / run.experiment / "runs" / run.run_id
    target.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if not (source / name).is_file():
            continue
        if (target / name).is_file() and (target / name).read_bytes() != (source / name).read_bytes():
            raise CampaignError(f"{target / name} exists and differs from the run's; move it away to collect again")
        shutil.copy2(source / name, target / name)
    for snapshot in sorted((source / "snapshots").glob("step-*.pt")):  # small files: the weights at a few steps
        (target / "snapshots").mkdir(exist_ok=True)
        if not (target / "snapshots" / snapshot.name).is_file():
            shutil.copy2(snapshot, target / "snapshots" / snapshot.name)
    weights = target / "weights.pt"
    if not weights.is_file() and (source / "last.ckpt").is_file():
        import torch

        state = torch.load(source / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        torch.save({"state_dict": {k: v for k, v in state.items() if k.startswith("model.")}}, weights)
    return target


def collect(name: str, root: Path | None = None, report: bool = True) -> None:
    """Every finished run into results/, then per experiment: the report and RUN.md."""
    campaign = Campaign(name, root)
    definition = campaign.definition()
    results_dir = Path(definition["results_dir"])
    experiments: dict[str, list[Run]] = {}
    for run in campaign.runs():
        experiments.setdefault(run.experiment, []).append(run)
        if campaign.finished(run):
            print(f"  {run.label} -> {copy_record(campaign, run, results_dir)}")
    for experiment, runs in experiments.items():
        folder = results_dir / experiment
        if not (folder / "runs").is_dir():
            continue
        if report:
            from ..report import make_report

            make_report(folder / "runs", folder, command=f"python -m resnet_repro.campaign collect {name}")
        (folder / "RUN.md").write_text(run_md(campaign, definition, experiment, runs))
        print(f"  wrote {folder / 'RUN.md'}")


def run_md(campaign: Campaign, definition: dict, experiment: str, runs: list[Run]) -> str:
    lines = [
        f"# How `results/{experiment}/` was made",
        "",
        f"Campaign `{campaign.name}` (conf/campaign/{campaign.name}.yaml): each run is",
        f"`python run.py <overrides> out_dir=<campaign>/runs data.root=<data> trainer.threads={definition['threads']}`,",
        f"{definition['jobs']} at a time at nice 19, started with `python -m resnet_repro.campaign start {campaign.name}`",
        "and resumed from its checkpoints in later sessions. Data: the CIFAR-10 JPEG (q75) copy,",
        f"`{Path(definition['data_root']).name}`. This file and the report: `python -m resnet_repro.campaign collect {campaign.name}`.",
        "",
        "| run | overrides | state | steps | wall time (training + evaluation) | final train / test error | trained with |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for run in runs:
        folder = Path(definition["results_dir"]) / experiment / "runs" / run.run_id
        collected = folder.is_dir()  # else still in the campaign: its progress there, not in results/
        p, record = progress(folder if collected else campaign.run_dir(run)), RunDir(folder)
        elapsed = hours(p["elapsed_s"]) if p["elapsed_s"] else ""
        errors = f"{p['train']:.2%} / {p['test']:.2%}" if p["train"] is not None and p["test"] is not None else ""
        state = record.status().get("state", "") if collected else "not finished (so far, in the campaign)"
        trained = "; ".join(environment_text(e) for e in record.environments()) if collected else ""
        lines.append(
            f"| {run.run_id} | `{' '.join(run.overrides)}` | {state} | {p['step']:,} | {elapsed} | {errors} | {trained} |"
        )
    lines += ["", "## Sessions: machines and commits", ""]
    for e in campaign.events():
        if e["event"] == "start":
            c = e.get("cpu", {})
            lines.append(
                f"- {e['time']} start on {e['host']}: {c.get('name')} (family {c.get('family')} model "
                f"{c.get('model')}, {c.get('cores')} cores; {c.get('simd')}), code {e.get('commit', '')[:10]}"
            )
        elif e["event"] == "stop":
            lines.append(f"- {e['time']} stop: {e.get('reason')}")
        elif e["event"] == "run exit" and e["run"].startswith(experiment + "/"):
            lines.append(f"  - {e['time']} {e['run']} exited (code {e['code']}) at step {e['step']:,}: {e['state']}")
    return "\n".join(lines) + "\n"
