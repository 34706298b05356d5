"""The report folder's index page, README.md: GitHub shows it when the folder is opened.

It shows every figure the report wrote (as images, with their PDFs), inlines Table 6 and the
claims table, links every other file, says what was left out (damaged runs, each with its fix) and
what was skipped and why, and sums up the provenance
(data copy, steps, seeds, the code the runs trained with and the report's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .nets import NetRuns
from .provenance import summary

if TYPE_CHECKING:
    from .build import Report

INDEX = "README.md"
# A README.md without this first line was not written by a report (a hand-written one): it is never overwritten.
MARKER = "<!-- written by resnet_repro.report: rewritten with every report of this folder -->"

FIGURES = {
    "figure1": "Figure 1: plain-20 vs plain-56, training error (left) and test error (right)",
    "figure6": "Figure 6: plain nets | ResNets | ResNet-110 vs 1202 (dashed: training error, bold: test error)",
    "figure7": "Figure 7: std of each 3x3 layer's response on the test images, in layer order and sorted",
}
TABLES = ("table6", "claims")  # each a .md (inlined) and a .csv
DATA_FILES = {
    "curves.csv": "every curve drawn, one row per (run, step, split)",
    "table6.csv": "Table 6 with every column",
    "claims.csv": "the claims table",
    "figure7.csv": "Figure 7's numbers, one row per (run, layer)",
    "provenance.json": "every run behind every artifact, what was left out and skipped, the command",
}


def index_markdown(report: Report, nets: list[NetRuns], root: Path, command: str) -> str:
    written = {p.name for p in report.written}
    drawn = [n for n in nets if len(n.usable)]
    lines = [
        MARKER,
        f"# Report of `{_shown(root, report.out_dir)}`",
        "",
        f"Made by `{command}` (report code {report.commit}).",
        "",
    ]
    if report.left_out:  # first: a reader must know the report is incomplete before reading its numbers
        lines += ["## Left out: this report is incomplete", ""]
        lines += [
            "These runs, or their part in an artifact, could not be used; fix each as it says and report again.",
            "",
        ]
        lines += [f"- {line}" for line in report.left_out] + [""]
    if drawn:
        runs = sum(len(n.usable) for n in drawn)
        lines += ["## Provenance", ""]
        lines += [
            f"- data: {text}" if key == "data" else f"- {text}" for key, text in summary(drawn, report.commit).items()
        ]
        lines += [
            f"- {runs} runs of {len(drawn)} nets ({', '.join(n.display_name for n in drawn)}); provenance.json lists each",
            "",
        ]
    figures = [name for name in FIGURES if f"{name}.png" in written]
    if figures:
        lines += ["## Figures", ""]
        for name in figures:
            pdf = f" ([PDF]({name}.pdf))" if f"{name}.pdf" in written else ""
            lines += [f"### {FIGURES[name]}", "", f"![{FIGURES[name].split(':')[0]}]({name}.png){pdf}", ""]
    for table in TABLES:  # inlined, their headings one level down
        if f"{table}.md" in written:
            text = (report.out_dir / f"{table}.md").read_text().strip()
            lines += ["\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()), ""]
            lines += [f"([{table}.md]({table}.md), [{table}.csv]({table}.csv))", ""]
    files = [name for name in DATA_FILES if name in written or name == "provenance.json"]
    lines += ["## Data files", ""] + [f"- [{name}]({name}): {DATA_FILES[name]}" for name in files] + [""]
    if report.skipped:
        lines += ["## Skipped", ""] + [f"- {line}" for line in report.skipped] + [""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {line}" for line in report.notes] + [""]
    return "\n".join(lines)


def _shown(root: Path, out_dir: Path) -> str:
    """The runs folder as a reader of the report folder finds it: relative to it (a committed report
    must not name the machine's absolute path), absolute only when the two share no parent."""
    try:
        return os.path.relpath(Path(root).resolve(), Path(out_dir).resolve())
    except ValueError:  # another drive (Windows)
        return str(root)


def write_index(report: Report, nets: list[NetRuns], root: Path, command: str) -> None:
    """README.md in the report folder, unless a README.md there was written by hand (then a skipped line)."""
    path = report.out_dir / INDEX
    if path.is_file() and not path.read_text().startswith(MARKER):
        report.skipped.append(f"index: {path} was not written by a report; move it away to get the index page")
        return
    path.write_text(index_markdown(report, nets, root, command))
    report.written.append(path)
    report.artifacts["index"] = {"files": [INDEX]}
