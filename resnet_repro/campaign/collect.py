"""Finished runs into results/<experiment>/runs/ (their record and final weights, never a checkpoint), then
per experiment the report and RUN.md: how the results were made, on which machines, under which commits."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

from ..runs import RunDir, RunFileError
from ..trained_with import environment_text
from .progress import hours, progress
from .store import Campaign, CampaignError, Run

# An interval between two log points this many times slower than the run's typical one held a stall: a pause (SIGSTOP
# for a benchmark, the machine suspended) or the nice-19 run starved by other work; the metrics cannot tell which.
# What it took beyond the typical time is not counted as training. (A load that only halves the speed is counted.)
PAUSE_FACTOR = 10
# RUN.md keeps one section per campaign that wrote into the folder: a new campaign adds its own, never erases another's.
SECTION = "<!-- campaign: {} -->"
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


def report_is_current(folder: Path) -> bool:
    """Whether the report in `folder` was made from the runs now in folder/runs: the runs its provenance.json
    lists, each in its state and at its step, are those there. A run collected or removed since, a damaged record,
    no provenance: False."""
    try:
        provenance = json.loads((folder / "provenance.json").read_text())
        reported = {
            (r["run"], r["status"], r["last_step"])
            for artifact in provenance["artifacts"].values()
            for net in artifact.get("nets", [])
            for r in net["runs"]
        }
        present = set()
        for status_file in (folder / "runs").rglob("status.json"):
            status = json.loads(status_file.read_text())
            present.add((status_file.parent.relative_to(folder / "runs").as_posix(), status["state"], status["step"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return present == reported


def collect(name: str, root: Path | None = None, report: bool = True, report_all: bool = False) -> None:
    """Every finished run into results/, then per experiment: RUN.md, and the report unless it was made from the
    runs there now (remade, only its dates and footers would change); `report_all` remakes every one (after a
    change to the report's code)."""
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
        if report and not report_all and report_is_current(folder):
            print(f"  {folder}: its report is of the runs there now; kept as it was (--report-all remakes it)")
        elif report:
            from ..report import make_report
            from ..report.build import claim_folder

            if {p.name for p in folder.iterdir()} <= {"runs", "RUN.md", "README.md"}:  # what collect itself makes
                claim_folder(folder)  # the experiment's report is written beside its runs
            make_report(folder / "runs", folder, command=f"python -m resnet_repro.campaign collect {name}")
        path = folder / "RUN.md"
        earlier = path.read_text() if path.is_file() else ""
        (folder / "RUN.md").write_text(
            merge_run_md(earlier, experiment, campaign.name, run_md(campaign, definition, experiment, runs))
        )
        print(f"  wrote {folder / 'RUN.md'}")


def note(name: str, text: str | None, experiment: str | None = None, root: Path | None = None) -> None:
    """A line written into the campaign's events, shown in RUN.md by every later collect (of `experiment` only, if
    named): what happened that the events cannot record, e.g. a run's progress lost with a machine."""
    campaign = Campaign(name, root)
    runs = campaign.runs()  # or CampaignError: not started on this machine
    if not text or not text.strip() or "\n" in text:
        raise CampaignError(f'note: give its text as one line: --text "..." ({campaign.command("note")} --text ...)')
    if experiment is not None and experiment not in {run.experiment for run in runs}:
        known = ", ".join(sorted({run.experiment for run in runs}))
        raise CampaignError(f"note: campaign {name} trains no experiment {experiment}; name one of: {known}")
    campaign.event("note", text=text.strip(), **({"experiment": experiment} if experiment else {}))
    print(f"campaign {name}: noted; it shows in RUN.md at the next `{campaign.command('collect')}`")


def training_time(rows: list[dict]) -> tuple[float, float]:
    """(seconds of training and evaluation, seconds of pauses) of a run, from its metrics' elapsed_s: an interval
    between log points that took more than PAUSE_FACTOR times the median of its kind (with or without an evaluation)
    held a pause, and its excess over that median is the pause's. Stops are not in elapsed_s (a resumed run goes on
    from its last row's), SIGSTOP pauses are."""
    points = sorted({(r["step"], float(r["elapsed_s"]), r["split"] != "train") for r in rows})
    by_step: dict[int, tuple[float, bool]] = {}
    for step, elapsed, evaluated in points:
        seen = by_step.get(step, (elapsed, False))
        by_step[step] = (max(seen[0], elapsed), seen[1] or evaluated)
    steps = sorted(by_step)
    if not steps:
        return 0.0, 0.0
    intervals = []  # (seconds per iteration, iterations, evaluated at its end)
    for s0, s1 in zip(steps, steps[1:]):
        dt = by_step[s1][0] - by_step[s0][0]
        if dt >= 0:
            intervals.append((dt / (s1 - s0), s1 - s0, by_step[s1][1]))
    first = by_step[steps[0]][0]
    typical = {
        kind: statistics.median(r for r, _, e in intervals if e == kind)
        for kind in (True, False)
        if any(e == kind for _, _, e in intervals)
    }
    paused = sum(
        (rate - typical[evaluated]) * n for rate, n, evaluated in intervals if rate > PAUSE_FACTOR * typical[evaluated]
    )
    total = first + sum(rate * n for rate, n, _ in intervals)
    return total - paused, paused


def stretches(events: list[dict], experiment: str | None = None) -> list[dict]:
    """The campaign's stretches, start to stop: when, where, the code, the jobs and threads it ran with (threads as
    its start event recorded them; jobs: the most runs it had going at once, from its run start and exit events)."""
    out, current, running = [], None, set()
    for e in events:
        if e["event"] == "start":
            current = {"start": e, "stop": None, "exits": [], "pauses": [], "jobs_seen": 0}
            running = set()
            out.append(current)
        elif current is None:
            continue
        elif e["event"] == "run start":
            running.add(e["run"])
            current["jobs_seen"] = max(current["jobs_seen"], len(running))
        elif e["event"] == "run exit":
            running.discard(e["run"])
            if experiment is None or e["run"].startswith(experiment + "/"):
                current["exits"].append(e)
        elif e["event"] in ("pause", "continue"):
            current["pauses"].append(e)
        elif e["event"] == "stop":
            current["stop"] = e
    return out


def run_md(campaign: Campaign, definition: dict, experiment: str, runs: list[Run]) -> str:
    lines = [
        SECTION.format(campaign.name),
        f"## Campaign `{campaign.name}`",
        "",
        f"Campaign `{campaign.name}` (conf/campaign/{campaign.name}.yaml): each run is",
        "`python run.py <overrides> out_dir=<campaign>/runs data.root=<data> trainer.threads=<threads>` at nice 19,",
        f"started with `python -m resnet_repro.campaign start {campaign.name}` and resumed from its checkpoints in later",
        f"sessions; the jobs and threads of each stretch are listed below (the definition says now: {definition['jobs']}",
        f"at a time, {definition['threads']} thread(s) each). Data: the CIFAR-10 JPEG (q75) copy,",
        f"`{Path(definition['data_root']).name}`. This file and the report: `python -m resnet_repro.campaign collect {campaign.name}`.",
        "",
        "Training time is wall time of training and evaluation, from the run's own clock (stops are not in it), less "
        f"its stalls: an interval between log points more than {PAUSE_FACTOR}x slower than the run's typical one "
        "(a pause for a benchmark, or the nice-19 run starved by other work: its metrics cannot tell which) counts "
        "only the typical time.",
        "",
        "| run | overrides | state | steps | training time | stalls left out | final train / test error | trained with |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for run in runs:
        folder = Path(definition["results_dir"]) / experiment / "runs" / run.run_id
        collected = folder.is_dir()  # else still in the campaign: its progress there, not in results/
        source = folder if collected else campaign.run_dir(run)
        p, record = progress(source), RunDir(folder)
        try:
            trained, paused = training_time(RunDir(source).read_metrics())
        except RunFileError:
            trained, paused = 0.0, 0.0
        elapsed = hours(trained) if trained else ""
        pauses = hours(paused) if paused >= 60 else ("none" if trained else "")
        errors = f"{p['train']:.2%} / {p['test']:.2%}" if p["train"] is not None and p["test"] is not None else ""
        state = record.status().get("state", "") if collected else "not finished (so far, in the campaign)"
        trained_with = "; ".join(environment_text(e) for e in record.environments()) if collected else ""
        lines.append(
            f"| {run.run_id} | `{' '.join(run.overrides)}` | {state} | {p['step']:,} | {elapsed} | {pauses} | {errors} "
            f"| {trained_with} |"
        )
    lines += ["", "### Stretches: machines, commits, jobs and threads", ""]
    for stretch in stretches(campaign.events(), experiment):
        e, c = stretch["start"], stretch["start"].get("cpu", {})
        threads = e.get("threads")
        threads = f"{threads} thread(s) per run" if threads is not None else "threads not recorded by this start"
        jobs = f"{stretch['jobs_seen']} run(s) at once" if stretch["jobs_seen"] else "no run started"
        lines.append(
            f"- {e['time']} start on {e['host']}: {c.get('name')} (family {c.get('family')} model "
            f"{c.get('model')}, {c.get('cores')} cores; {c.get('simd')}), code {e.get('commit', '')[:10]}; "
            f"{jobs}, {threads}"
        )
        for x in stretch["pauses"]:
            lines.append(f"  - {x['time']} {'paused' if x['event'] == 'pause' else 'continued'}")
        for x in stretch["exits"]:
            lines.append(f"  - {x['time']} {x['run']} exited (code {x['code']}) at step {x['step']:,}: {x['state']}")
        if stretch["stop"]:
            lines.append(f"- {stretch['stop']['time']} stop: {stretch['stop'].get('reason')}")
    notes = [e for e in campaign.events() if e["event"] == "note" and e.get("experiment") in (None, experiment)]
    if notes:
        lines += ["", "### Notes", ""] + [f"- {e['time']}: {e.get('text', '')}" for e in notes]
    return "\n".join(lines) + "\n"


def merge_run_md(earlier: str, experiment: str, campaign: str, section: str) -> str:
    """RUN.md with `campaign`'s section replaced by `section` (or added), every other campaign's kept as it was. A
    RUN.md of older code (one campaign, no section marks) is kept whole as the section of the campaign it names."""
    title = f"# How `results/{experiment}/` was made\n"
    body = earlier[len(title) :] if earlier.startswith(title) else earlier
    sections: dict[str, str] = {}
    parts = re.split(r"<!-- campaign: (.+?) -->\n", body)
    if len(parts) > 1:
        for name, text in zip(parts[1::2], parts[2::2]):
            sections[name] = SECTION.format(name) + "\n" + text.strip("\n") + "\n"
    elif body.strip():
        named = re.search(r"Campaign `([^`]+)`", body)
        old = named.group(1) if named else "earlier"
        sections[old] = (
            f"{SECTION.format(old)}\n## Campaign `{old}` (as an earlier collect wrote it)\n\n{body.strip()}\n"
        )
    sections[campaign] = section
    return title + "\n" + "\n".join(sections.values())
