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

from .. import paper
from .figures import figure1_title, figure6_panels, pairs_of, pairs_title
from .nets import NetRuns
from .provenance import summary
from .style import axis_tops

if TYPE_CHECKING:
    from .build import Report

INDEX = "README.md"
# A README.md without this first line was not written by a report (a hand-written one): it is never overwritten.
MARKER = "<!-- written by resnet_repro.report: rewritten with every report of this folder -->"

FIGURES = ("figure1", "figure6", "pairs", "figure7")  # in this order on the page


def figure_caption(name: str, nets: list[NetRuns], artifact: dict | None = None) -> str:
    """What the image shows, made from the nets it draws (`artifact`: its provenance entry, which names them), as
    its own title is; never a fixed text."""
    recorded = {r["net"] for r in (artifact or {}).get("nets", [])}
    drawn = [n for n in nets if len(n.usable) and (not recorded or n.display_name in recorded)]
    ymax = (artifact or {}).get("ymax")
    # the error curves' figures add a row on the paper's axis where theirs rose above it (style.axis_tops)
    below = (
        f"; below, the same on the paper's 0-{paper.ERROR_AXIS:g}% axis"
        if ymax and len(axis_tops(drawn, ymax)) > 1
        else ""
    )
    if name == "figure1":
        shown = [n for n in drawn if n.arch == "plain" and n.depth in (20, 56) and n.shortcut == "none"]
        missing = [f"plain-{d}" for d in (20, 56) if d not in {n.depth for n in shown}]
        return figure1_title(shown, missing) + ", training error (left, dashed) and test error (right, solid)" + below
    if name == "figure6":
        panels = figure6_panels(drawn)
        count = {1: "one panel", 2: "two panels", 3: "three panels"}[len(panels)]
        return (
            f"Figure 6, {count}: " + " | ".join(t for t, _ in panels) + " (dashed: training error, solid: test error)"
        ) + below
    if name == "pairs":
        return (
            pairs_title(pairs_of(drawn)) + " (not a figure of the paper; dashed: training, solid: test error)" + below
        )
    shown = ", ".join(n.display_name for n in drawn)
    return f"Figure 7: std of each 3x3 layer's response on the test images ({shown}), in layer order and sorted"


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
            caption = figure_caption(name, nets, report.artifacts.get(name))
            alt = "Plain vs ResNet at equal depth" if name == "pairs" else f"Figure {name.removeprefix('figure')}"
            lines += [f"### {caption}", "", f"![{alt}]({name}.png){pdf}", ""]
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
