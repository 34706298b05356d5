"""A benchmark's result: the Markdown table (with the machine and the settings), the CSV of every
measurement beside it, and a file name that never overwrites an earlier result.

The committed files in results/bench/ are the format.
"""

from __future__ import annotations

import csv
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import BARE_LOOP, PROJECT, TimedPath


@dataclass
class Row:
    """One measurement."""

    depth: int
    path: TimedPath
    repeat: int
    images_per_s: float
    load: str  # the load average right after it


NOTE = """Medians over the repeats; a/c divides by the fastest reference setting run as a public script runs
(torch's default OpenMP environment); "same OpenMP env" divides by the reference run with the
project's OpenMP setting (GOMP_SPINCOUNT), which isolates the code paths. The paths of one repeat run
within a minute or two of each other, so the ratios within each repeat show how much a drift in the
machine's load moved the medians:"""


def render(rows: list[Row], info: dict, settings: dict, loads: list[str]) -> str:
    """The Markdown result: machine and settings, the table of medians, variants, per-repeat ratios, every value."""
    depths = sorted({r.depth for r in rows})
    paths = list(dict.fromkeys(r.path for r in rows))
    refs = [p for p in paths if p.kind == "reference" and p.thread_env == "default"]  # as a public script runs
    same_env = [p for p in paths if p.kind == "reference" and p.thread_env == "project"]  # the project's OMP env
    variants = [p for p in paths if p.is_variant]
    values = {(d, p): [r.images_per_s for r in rows if r.depth == d and r.path == p] for d in depths for p in paths}
    median = {key: statistics.median(v) for key, v in values.items()}

    lines = ["# Training throughput (images/second, after warm-up)", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- {k}: {v}" for k, v in settings.items()]
    lines += [f"- load average (1, 5, 15 min) before each depth and at the end: {' | '.join(loads)}", ""]

    head = ["net", *[p.label for p in paths], "a/c", *(["a/c, same OpenMP env"] if same_env else []), "a/b"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def over(d: int, group: list[TimedPath]) -> str:  # (a) over the fastest of a group of references
        return f"{median[d, PROJECT] / max(median[d, p] for p in group):.2f}" if group else "-"

    for d in depths:
        cells = [f"ResNet-{d}", *[f"{median[d, p]:.0f}" for p in paths], over(d, refs)]
        cells += [over(d, same_env)] if same_env else []
        cells += [f"{median[d, PROJECT] / median[d, BARE_LOOP]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")

    if variants:
        lines += ["", "Variants of the project path, measured in the same rotation (speed relative to (a)):", ""]
        for d in depths:
            relative = [f"{p.label}: {median[d, p] / median[d, PROJECT]:.2f}" for p in variants]
            lines.append(f"- ResNet-{d}: " + "; ".join(relative))

    lines += ["", NOTE, ""]
    for d in depths:
        a, b = values[d, PROJECT], values[d, BARE_LOOP]
        per_c = [a[r] / max(values[d, p][r] for p in refs) for r in range(len(a))] if refs else []
        per_b = [a[r] / b[r] for r in range(len(a))]
        over_c = ", ".join(f"{x:.2f}" for x in per_c) + (f" (median {statistics.median(per_c):.2f})" if per_c else "")
        over_b = ", ".join(f"{x:.2f}" for x in per_b) + f" (median {statistics.median(per_b):.2f})"
        lines.append(f"- ResNet-{d}: a/c per repeat {over_c}; a/b per repeat {over_b}")

    lines += ["", "Every measurement (images/s, in repeat order):", ""]
    for d in depths:
        each = [f"{p.code} " + ", ".join(f"{x:.0f}" for x in values[d, p]) for p in paths]
        lines.append(f"- ResNet-{d}: " + "; ".join(each))
    return "\n".join(lines) + "\n"


def write_csv(rows: list[Row], out: Path) -> None:
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["depth", "path", "repeat", "images_per_s", "load_after"])
        writer.writerows([r.depth, r.path.label, r.repeat, f"{r.images_per_s:.2f}", r.load] for r in rows)


def slug(text: str) -> str:
    """'AMD EPYC 9B14' -> 'amd-epyc-9b14'."""
    return "-".join(part for part in "".join(c if c.isalnum() else "-" for c in text.lower()).split("-") if part)


def default_out(info: dict[str, str]) -> Path:
    """results/bench/<cpu>-<cores>c[-<gpu>].md in the current directory (a checkout's results/); dated
    when that name (or its .csv) is taken, so an earlier benchmark is kept."""
    name = f"{slug(info['cpu'].split(' (')[0])}-{info['cores']}c"
    if info["gpu"] != "none":
        name += "-" + slug(info["gpu"])
    out = Path("results") / "bench" / f"{name}.md"
    if taken(out):
        out = out.with_name(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.md")
    return out


def taken(out: Path) -> bool:
    """Whether a result file (or the .csv beside it) exists: a benchmark never overwrites one."""
    return out.exists() or out.with_suffix(".csv").exists()
