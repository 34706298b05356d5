"""Where every artifact's numbers come from: data copy, steps, seeds, code, settings that are not the paper's.

Each figure carries it as a footer, Table 6 and the claims table as a header or footer, the
index page as a list, and provenance.json as data (every run used, per artifact).
"""

from __future__ import annotations

import datetime

import pandas as pd

from .. import paper
from .nets import NetRuns


def seeds(runs: pd.DataFrame) -> str:
    return ",".join(str(s) for s in sorted(set(runs.seed)))


def trained_with(nets: list[NetRuns]) -> list[str]:
    """The distinct environments (code commit, precision, device, torch) the shown runs trained in."""
    return sorted({e for n in nets for line in n.usable.trained_with for e in line.split("; ")})


def settings_not_the_papers(nets: list[NetRuns]) -> dict:
    """{key: (ours, the paper's)} over the nets, but steps (said on its own)."""
    differs = {}
    for n in nets:
        differs.update({k: v for k, v in n.differs.items() if k != "steps"})
    return differs


def summary(nets: list[NetRuns], commit: str) -> dict[str, str]:
    """The provenance of what `nets` show, one line each: data, steps, seeds, trained with, not the paper's, report."""
    steps = sorted({n.steps for n in nets})
    steps_text = "steps=" + "/".join(map(str, steps)) + ("" if steps == [paper.STEPS] else f" (paper: {paper.STEPS})")
    seed_sets = {seeds(n.usable) for n in nets}
    if len(seed_sets) == 1:
        seeds_text = f"seeds {seed_sets.pop()}"
    else:
        seeds_text = "seeds " + "; ".join(f"{n.display_name}: {seeds(n.usable)}" for n in nets)
    lines = {
        "data": " + ".join(sorted({d for n in nets for d in n.usable.dataset})),
        "steps": steps_text,
        "seeds": seeds_text,
        "report": f"report code {commit}  ·  {datetime.date.today()}",
        "trained with": "trained with " + " | ".join(trained_with(nets)),
    }
    differs = settings_not_the_papers(nets)
    if differs:
        lines["not the paper's"] = "not the paper's: " + ", ".join(
            f"{k}={ours} (paper: {theirs})" for k, (ours, theirs) in differs.items()
        )
    return lines


def provenance_text(nets: list[NetRuns], commit: str) -> str:
    """The footer every figure carries: data, steps, seeds, settings that are not the paper's, code."""
    lines = summary(nets, commit)
    first = "  ·  ".join(lines.pop(k) for k in ("data", "steps", "seeds", "report"))
    return "\n".join([first, *lines.values()])


def net_record(net: NetRuns) -> dict:
    """A net as provenance.json lists it under each artifact: its settings and every run used."""
    return {
        "net": net.display_name,
        "arch": net.arch,
        "depth": net.depth,
        "shortcut": net.shortcut,
        "steps": net.steps,
        "paper_steps": paper.STEPS,
        "settings_not_the_papers": {k: {"ours": a, "paper": b} for k, (a, b) in net.differs.items()},
        "runs": net.runs[["run", "seed", "status", "last_step", "dataset", "trained_with"]].to_dict("records"),
    }
