"""A benchmark's result: the Markdown table (with the machine and the settings), the achieved GFLOP/s
and their fractions of the machine's ceilings, where a bare-loop step's time goes, the CSV of every
measurement beside it, and a file name that names the CPU kind and never overwrites an earlier result.

The committed files in results/bench/ are the format.
"""

from __future__ import annotations

import csv
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from resnet_repro import machine

from .ceiling import Ceiling
from .flops import NetFlops
from .paths import BARE_LOOP, PROJECT, TimedPath
from .profile import ORDER, StepProfile


@dataclass
class Row:
    """One measurement."""

    depth: int
    path: TimedPath
    repeat: int
    images_per_s: float
    load: str  # the load average right after it


@dataclass
class Work:
    """What turns images/s into achieved GFLOP/s and fractions of the machine's ceilings."""

    flops: dict[int, NetFlops]  # counted FLOPs per image, by depth
    arithmetic: dict[TimedPath, str]  # fp32 | bf16 | fp16: what (a), (b) and each variant compute in
    ceilings: dict[str, Ceiling]  # by arithmetic

    def arithmetic_of(self, path: TimedPath) -> str:
        return "fp32" if path.kind == "reference" else self.arithmetic[path]  # the reference is fp32 by design

    def gflops(self, depth: int, images_per_s: float) -> float:
        """Training GFLOP/s of `depth` at this speed (images/s x counted FLOPs per training image)."""
        return images_per_s * self.flops[depth].training / 1e9

    def fractions(self, path: TimedPath, gflops: float) -> tuple[float | None, float]:
        """Of the nominal peak (None where not modelled) and of the measured ceiling, for the path's arithmetic."""
        ceiling = self.ceilings[self.arithmetic_of(path)]
        peak = ceiling.nominal.gflops
        return (gflops / peak if peak else None), gflops / ceiling.measured


def percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


ACHIEVED = """Training GFLOP/s achieved (median images/s x counted FLOPs per training image), against the
ceilings of the arithmetic each path computes in:"""
PROFILED = """Where the time of a bare-loop step (b) goes: torch.profiler over {steps} steps, each op's self CPU
time summed by part (bench/profile.py), ms per step and share of the profiled step:"""
NOTE = """Medians over the repeats; a/c divides by the fastest reference setting run as a public script runs
(torch's default OpenMP environment); "same OpenMP env" divides by the reference run with the
project's OpenMP setting (GOMP_SPINCOUNT), which isolates the code paths. The paths of one repeat run
within a minute or two of each other, so the ratios within each repeat show how much a drift in the
machine's load moved the medians:"""


def render(
    rows: list[Row],
    info: dict,
    settings: dict,
    loads: list[str],
    work: Work | None = None,
    profiles: dict[int, StepProfile] | None = None,
) -> str:
    """The Markdown result: machine and settings, the table of medians, GFLOP/s, variants, the profile of (b),
    per-repeat ratios, every value."""
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

    if work:
        lines += achieved(work, depths, paths, median)
    if variants:
        lines += ["", "Variants of the project path, measured in the same rotation (speed relative to (a)):", ""]
        for d in depths:
            relative = [f"{p.label}: {median[d, p] / median[d, PROJECT]:.2f}" for p in variants]
            lines.append(f"- ResNet-{d}: " + "; ".join(relative))

    if profiles:
        lines += where_the_time_goes(profiles, median)
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


def achieved(work: Work, depths: list[int], paths: list[TimedPath], median: dict) -> list[str]:
    """The table of achieved training GFLOP/s (median images/s x FLOPs per training image) and its fractions."""
    lines = ["", ACHIEVED, "", "| net | path | arithmetic | GFLOP/s | of nominal peak | of measured ceiling |"]
    lines.append("|---|---|---|---|---|---|")
    for d in depths:
        for p in paths:
            gflops = work.gflops(d, median[d, p])
            of_peak, of_measured = work.fractions(p, gflops)
            cells = [f"ResNet-{d}", p.label, work.arithmetic_of(p), f"{gflops:.1f}", percent(of_peak)]
            lines.append("| " + " | ".join([*cells, percent(of_measured)]) + " |")
    return lines


def where_the_time_goes(profiles: dict[int, StepProfile], median: dict) -> list[str]:
    """The profile of a bare-loop step (b) by part, per depth, and Lightning's cost per step (a - b)."""
    depths = sorted(profiles)
    first = profiles[depths[0]]
    lines = ["", PROFILED.format(steps=first.steps)]
    lines += ["", "| part | " + " | ".join(f"ResNet-{d}" for d in depths) + " |", "|---|" + "---|" * len(depths)]
    for part in ORDER:
        cells = [f"{profiles[d].parts[part]:.1f} ({percent(profiles[d].share(part))})" for d in depths]
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    rows = {
        "profiled step (wall)": [f"{profiles[d].ms_per_step:.1f}" for d in depths],
        "parts sum / profiled step": [percent(profiles[d].attributed) for d in depths],
        "(b) unprofiled, median": [f"{ms(profiles[d], median[d, BARE_LOOP]):.1f}" for d in depths],
        "Lightning per step, (a) - (b) medians": [
            f"{ms(profiles[d], median[d, PROJECT]) - ms(profiles[d], median[d, BARE_LOOP]):.1f}" for d in depths
        ],
    }
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    return lines


def ms(profile: StepProfile, images_per_s: float) -> float:
    """A step's milliseconds at this speed."""
    return profile.batch_size / images_per_s * 1000


def write_csv(rows: list[Row], out: Path, work: Work | None = None) -> None:
    """Every measurement; with `work`, its achieved GFLOP/s and their fractions of the ceilings."""
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["depth", "path", "repeat", "images_per_s", "load_after", "gflop_per_s", "of_peak", "of_measured"]
        )
        for r in rows:
            cells = [r.depth, r.path.label, r.repeat, f"{r.images_per_s:.2f}", r.load, "", "", ""]
            if work:
                gflops = work.gflops(r.depth, r.images_per_s)
                of_peak, of_measured = work.fractions(r.path, gflops)
                cells[-3:] = [f"{gflops:.2f}", "" if of_peak is None else f"{of_peak:.4f}", f"{of_measured:.4f}"]
            writer.writerow(cells)


def slug(text: str) -> str:
    """'AMD EPYC 9B14' -> 'amd-epyc-9b14'."""
    return "-".join(part for part in "".join(c if c.isalnum() else "-" for c in text.lower()).split("-") if part)


def default_out(cpu: machine.Cpu, cores: int, gpu: str | None, prefix: str = "") -> Path:
    """results/bench/<prefix><cpu>-f<family>m<model>-<cores>c[-<gpu>].md in the current directory (a
    checkout's results/), e.g. amd-epyc-f26m2-2c.md; dated when that name (or its .csv) is taken, so an
    earlier benchmark is kept."""
    parts = [slug(cpu.describe().split(" (")[0]), cpu.kind, f"{cores}c", gpu and slug(gpu)]
    name = prefix + "-".join(filter(None, parts))
    out = Path("results") / "bench" / f"{name}.md"
    if taken(out):
        out = out.with_name(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.md")
    return out


def taken(out: Path) -> bool:
    """Whether a result file (or the .csv beside it) exists: a benchmark never overwrites one."""
    return out.exists() or out.with_suffix(".csv").exists()
