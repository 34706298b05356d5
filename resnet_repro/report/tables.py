"""Table 6: final test and val error of each net over its finished runs, beside the paper's number."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from .. import paper
from .nets import NetRuns
from .provenance import seeds, settings_not_the_papers, trained_with


def paper_number(net: NetRuns) -> tuple[float | None, float | None, float | None, str]:
    """(paper's test error, its best, its std, as printed) for this net; None where the paper has none."""
    if net.arch == "plain":
        return None, None, None, paper.PLAIN_110 if net.depth == 110 else "—"
    if net.shortcut != "A" or net.net.block != "basic" or net.depth not in paper.TEST_ERROR:
        return None, None, None, "—"
    if net.depth == 110:
        mean, best, std = paper.TEST_ERROR[110], paper.RESNET110_BEST, paper.RESNET110_STD
        return mean, best, std, f"{best} best ({mean} ± {std})"
    return paper.TEST_ERROR[net.depth], None, None, f"{paper.TEST_ERROR[net.depth]}"


def final_errors(net: NetRuns, split: str) -> pd.Series:
    """Error % at the last logged step of each finished run (no selection on the test set)."""
    rows = net.curves[(net.curves.split == split) & net.curves.run.isin(net.done.run)]
    last = rows.sort_values("step").groupby("run").tail(1)
    return last.set_index("run").error * 100


def table6_rows(nets: list[NetRuns], commit: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per net with a finished run (the CSV's columns), and a line for each net without."""
    rows, skipped = [], []
    for net in nets:
        if net.done.empty:
            state = ", ".join(
                f"seed {r.seed} {r.status} at step {r.last_step}/{net.steps}" for r in net.runs.itertuples()
            )
            skipped.append(f"Table 6 {net.cli_name}: no finished run ({state})")
            continue
        row = {
            "net": net.display_name,
            "arch": net.arch,
            "depth": net.depth,
            "shortcut": net.shortcut,
            "params": net.net.parameters,
            "steps": net.steps,
            "paper_steps": paper.STEPS,
            "runs": len(net.done),
            "runs_unfinished": len(net.runs) - len(net.done),
            "seeds": seeds(net.done),
        }
        for split in ("test", "val"):
            errors = final_errors(net, split)
            row[f"{split}_error_mean"] = errors.mean() if len(errors) else np.nan
            row[f"{split}_error_std"] = errors.std(ddof=1) if len(errors) > 1 else np.nan  # sample std over runs
            row[f"{split}_error_best"] = errors.min() if len(errors) else np.nan
        papers, papers_best, papers_std, _ = paper_number(net)
        row.update(
            {
                "paper_test_error": papers,
                "paper_test_error_best": papers_best,
                "paper_test_error_std": papers_std,
                "difference": row["test_error_mean"] - papers if papers is not None else np.nan,
                "dataset": " + ".join(sorted(set(net.done.dataset))),
                "trained_with": " | ".join(trained_with([net])),
                "report_code_commit": commit,
            }
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        numeric = [c for c in table.columns if c.startswith(("test_", "val_", "paper_test", "difference"))]
        table[numeric] = table[numeric].astype(float).round(4)
    return table, skipped


def _pct(value: float | None, sign: bool = False) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def _mean_std(mean: float, std: float) -> str:
    return _pct(mean) if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def table6_markdown(table: pd.DataFrame, nets: list[NetRuns], commit: str) -> str:
    by_name = {n.display_name: n for n in nets}
    lines = [
        "# Table 6: classification error on the CIFAR-10 test set (%)",
        "",
        f"Data: {' + '.join(sorted(set(table.dataset)))} · report code {commit} · {datetime.date.today()}  ",
        f"Trained with: {' | '.join(trained_with(nets))}  ",
        (
            "Error at the last iteration of each finished run (no selection on the test set); mean ± sample std "
            "over runs, and the best run. Paper: He et al. 2016, Table 6 (option A shortcuts; ResNet-110 is best "
            "(mean ± std) of 5 runs; the paper gives plain nets no row). ours − paper: our mean minus the paper's "
            "number (ResNet-110: its mean)."
        ),
        "",
        "| net | params | steps | runs (seeds) | test error | best | val error | best | paper | ours − paper |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        steps = f"{r.steps}" + ("" if r.steps == paper.STEPS else f" (paper: {paper.STEPS})")
        runs = f"{r.runs} ({r.seeds})" + (f", {r.runs_unfinished} unfinished" if r.runs_unfinished else "")
        lines.append(
            f"| {r.net} | {r.params / 1e6:.2f}M ({r.params:,}) | {steps} | {runs} "
            f"| {_mean_std(r.test_error_mean, r.test_error_std)} | {_pct(r.test_error_best)} "
            f"| {_mean_std(r.val_error_mean, r.val_error_std)} | {_pct(r.val_error_best)} "
            f"| {paper_number(by_name[r.net])[3]} | {_pct(r.difference, sign=True)} |"
        )
    differs = settings_not_the_papers(nets)
    if differs:
        lines += [
            "",
            "Settings that are not the paper's: " + ", ".join(f"{k}={a} (paper: {b})" for k, (a, b) in differs.items()),
        ]
    return "\n".join(lines) + "\n"
