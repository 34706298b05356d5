"""How far a campaign is: per run its step, errors, speed and ETA; for the whole, iterations and hours left."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..runs import RunDir, RunFileError, process_alive
from .store import Campaign, Run


def progress(run_dir: Path) -> dict:
    """Step, seconds per iteration (evaluations included), elapsed seconds and the latest errors of a run."""
    out = {"step": 0, "s_per_it": None, "elapsed_s": None, "train": None, "test": None}
    run = RunDir(run_dir)
    # status.json has the step a stopped run checkpointed (249), metrics.csv only its last log row (200)
    reached = run.status().get("step")
    out["step"] = reached if isinstance(reached, int) and not isinstance(reached, bool) else 0
    try:
        rows = run.read_metrics()
    except RunFileError:  # a damaged file: the run itself says so, in one line, when it resumes
        return out
    for row in rows:  # metrics rows come every log_every steps (status.json only at checkpoints)
        out[row["split"]] = float(row["error"])
        out["step"] = max(out["step"], row["step"])
        out["elapsed_s"] = float(row["elapsed_s"])
    timed = [(r["step"], float(r["elapsed_s"])) for r in rows if r["split"] == "train"][-21:]
    # The median over the latest 20 intervals between log points: the machine may have changed since the
    # first, and one interval that spans a pause (a benchmark, SIGSTOP) or a stop must not set the rate.
    rates = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(timed, timed[1:]) if s1 > s0 and t1 > t0]
    if rates:
        out["s_per_it"] = statistics.median(rates)
    return out


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def scaled_rate(rates: dict[int, float], depth: int) -> float | None:
    """A run not yet measured: the nearest measured depth's rate, scaled by the number of layers."""
    if not rates:
        return None
    nearest = min(rates, key=lambda d: abs(d - depth))
    return rates[nearest] * (depth - 2) / (nearest - 2)


def rates_to_predict(measured: list[tuple[int, float | None, str]]) -> list[float | None]:
    """Seconds per iteration to predict each run's time left by, given (depth, its own measured rate,
    state) per run. A running run: its own. Any other, while runs are running: theirs, scaled by
    depth (a stopped run's own rate may come from another time: the machine shared, other threads);
    with none running: its own, else the nearest measured depth's."""
    running = {depth: rate for depth, rate, state in measured if state == "running" and rate}
    every: dict[int, float] = {}
    for depth, rate, _ in measured:
        if rate:
            every.setdefault(depth, rate)
    predicted = []
    for depth, rate, state in measured:
        if state == "running" and rate:
            predicted.append(rate)
        elif running:
            predicted.append(scaled_rate(running, depth))
        else:
            predicted.append(rate or scaled_rate(every, depth))
    return predicted


def shown_state(campaign: Campaign, run: Run, supervisor: int | None) -> str:
    """The run's state as status.json has it, but "stopped" for a "running" run whose process is gone (a run
    stopped by a SIGTERM under older code, or killed) or whose campaign is not running."""
    status = campaign.run_status(run)
    state = status.get("state", "waiting")
    if state == "running" and (supervisor is None or process_alive(status.get("pid"), status.get("host")) is False):
        return "stopped"
    return state


def status(name: str, root: Path | None = None) -> None:
    campaign = Campaign(name, root)
    definition = campaign.definition()
    pid = campaign.supervisor_pid()
    state = "not running" if pid is None else ("paused" if campaign.paused(pid) else f"running (pid {pid}, nice 19)")
    print(
        f"campaign {name}: {state}; code {definition['commit'][:10]}; {definition['jobs']} at a time, "
        f"{definition['threads']} thread(s) each; runs in {campaign.runs_dir}"
    )
    runs = [(run, progress(campaign.run_dir(run)), shown_state(campaign, run, pid)) for run in campaign.runs()]
    rates = rates_to_predict([(run.depth, p["s_per_it"], state) for run, p, state in runs])
    seconds_left, steps_done, steps_all = 0.0, 0, 0
    for (run, p, state), rate in zip(runs, rates):
        left = 0 if state in ("done", "diverged") else run.steps - p["step"]
        steps_done, steps_all = steps_done + run.steps - left, steps_all + run.steps
        eta = left * rate if rate else None
        seconds_left += eta or 0
        errors = "".join(f"  {k} {p[k]:.1%}" for k in ("train", "test") if p[k] is not None)
        speed = f"  {p['s_per_it']:.2f} s/it" if p["s_per_it"] else ""
        when = f"  ETA {hours(eta)}" if eta else ""
        print(f"  {run.label:28s} {state:9s} step {p['step']:>6,}/{run.steps:<6,}{errors}{speed}{when}")
    finished = sum(state in ("done", "diverged") for _, _, state in runs)
    print(
        f"  {len(runs)} runs: {finished} finished; iterations {steps_done:,} of {steps_all:,} "
        f"({steps_done / steps_all:.0%}); about {hours(seconds_left / definition['jobs'])} of compute left "
        f"at the measured rates" + ("" if any(rates) else " (no rate measured yet)")
    )
