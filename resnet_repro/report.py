"""The paper's artifacts from run directories: Figure 1, Figure 6, Table 6, Figure 7, with provenance.

    python -m resnet_repro.report experiments/fig6 -o experiments/fig6/report

Writes every artifact the runs allow (figures as PNG and PDF, Table 6 as
Markdown and CSV, provenance.json beside them) and prints which it skipped and
why. It reads run directories only, never imports training code, and needs no
GPU. A sweep runs it at its end through `ReportCallback` (see conf/config.yaml;
`report=false` turns it off).

What a curve is: the runs of one net (arch, depth, shortcut) whose learned
settings are equal except for the seed form one configuration, drawn as the
mean over its runs with a min-max band. Where a root holds several
configurations of one net (say a short and a long sweep), the longest is used
and the others are named; report a sweep's own folder to see those.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import sys
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from hydra.experimental.callback import Callback
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from omegaconf import DictConfig, OmegaConf

from . import paper
from .analysis import Unavailable, run_response_stds
from .config import CONF_DIR
from .models import Net as NetIdentity
from .results import load_runs
from .runs import RunDir, code_commit, configuration, environment_text, run_settings

FIGURE6_SIDES = ("left", "middle", "right")
# Settings that only change how often things are measured, not what is learned like the paper.
NOT_THE_PAPERS = {"eval_every", "log_every", "warmup.check_every"}

# One colour per depth across all figures, told apart also by colour-blind readers (20 and 56 of Figure 1 most of all).
DEPTH_COLOURS = {20: "#E69F00", 32: "#56B4E9", 44: "#009E73", 56: "#B2182B", 110: "#332288", 1202: "#CC79A7"}
OTHER_COLOURS = ("#000000", "#777777", "#8C564B", "#17BECF", "#9467BD")
DPI = 150
FIGSIZE = {"figure1": (11.0, 4.8), "figure6": (16.0, 5.6), "figure7": (10.0, 8.5)}  # inches; pixels = inches * DPI
STYLE = {
    "font.size": 11, "axes.titlesize": 12.5, "axes.labelsize": 12, "legend.fontsize": 10,
    "xtick.labelsize": 10.5, "ytick.labelsize": 10.5, "axes.grid": True, "grid.alpha": 0.35,
    "grid.linewidth": 0.7, "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42,
}  # fmt: skip
TEST_LW, TRAIN_LW = 2.4, 1.3  # the paper: bold = test error, dashed = training error


# --------------------------------------------------------------------------- runs -> nets


@dataclass
class Net:
    """One configuration of one net: runs with equal learned settings, differing only by seed."""

    arch: str
    depth: int
    shortcut: str
    steps: int
    root: Path  # the runs root; a run's folder is root / run
    runs: pd.DataFrame  # one row per run: run, seed, status, last_step, dataset, trained_with
    metrics: pd.DataFrame  # load_runs rows of the usable runs
    differs: dict = field(default_factory=dict)  # learned setting -> (ours, the paper's)

    @property
    def key(self) -> NetIdentity:
        return NetIdentity(self.arch, self.depth, self.shortcut)

    @property
    def cli_name(self) -> str:  # as a user types it: plain-56, resnet-110, resnet-56-B
        return self.key.name

    @property
    def name(self) -> str:  # as the paper writes it: plain-56, ResNet-110, ResNet-56 (B)
        return self.key.display_name

    @property
    def usable(self) -> pd.DataFrame:
        return self.runs[self.runs.status.isin(["done", "running"])]

    @property
    def done(self) -> pd.DataFrame:
        return self.runs[self.runs.status == "done"]

    @property
    def colour(self) -> str:
        return DEPTH_COLOURS.get(self.depth) or OTHER_COLOURS[hash(self.depth) % len(OTHER_COLOURS)]

    def legend_label(self, style: str = "net", steps: bool = False) -> str:
        """e.g. 'ResNet-56 (3 runs)'; `steps` names the run length, for panels that mix lengths."""
        label = f"{self.depth}-layer" if style == "layers" else self.name
        notes = [f"{len(self.usable)} runs"] if len(self.usable) > 1 else []
        if steps:
            notes.append(f"steps={self.steps}")
        unfinished = self.usable[self.usable.status != "done"]
        if len(unfinished):
            notes.append(f"unfinished: step {int(unfinished.last_step.min())} of {self.steps}")
        return label + (f" ({'; '.join(notes)})" if notes else "")


def learned_settings(cfg: DictConfig) -> dict:
    """A run's settings without its seed (runs.run_settings, runs.configuration): runs with equal ones are one curve."""
    return configuration(run_settings(cfg))


@lru_cache(maxsize=1)
def paper_settings() -> dict:
    """conf/config.yaml's learned settings (the paper's protocol; the configs ship inside the package)."""
    return learned_settings(OmegaConf.load(CONF_DIR / "config.yaml"))


def settings_differing(settings: dict) -> dict:
    """Learned settings that are not the paper's, as {key: (ours, paper's)}; steps first."""
    papers = paper_settings()
    keys = sorted((settings.keys() | papers.keys()) - NOT_THE_PAPERS - {"arch", "depth", "shortcut"},
                  key=lambda k: (k != "steps", k))  # fmt: skip
    return {k: (settings.get(k), papers.get(k)) for k in keys if settings.get(k) != papers.get(k)}


def dataset_label(run: RunDir, cfg: DictConfig) -> str:
    """What the run trained on, as training recorded it (e.g. 'CIFAR-10 (JPEG q75 copy)');
    runs made before training recorded it say so, with where their data was."""
    try:
        return run.dataset_file.read_text().strip()
    except OSError:
        return f"dataset not recorded (data.root={cfg.data.root})"


def collect_nets(root: Path) -> tuple[list[Net], list[str]]:
    """The nets under `root`, one configuration each, and notes on what was left out."""
    df = load_runs(root)
    infos = []
    for run, rows in df.groupby("run", sort=True):
        folder = RunDir(root / run)
        cfg = OmegaConf.load(folder.config_file)
        settings = learned_settings(cfg)
        first = rows.iloc[0]
        infos.append({
            "run": run, "sweep": first.sweep, "arch": first.arch, "depth": int(first.depth),
            "shortcut": first.shortcut, "steps": int(first.steps), "seed": int(first.seed), "status": first.status,
            "last_step": int(rows.step.max()), "dataset": dataset_label(folder, cfg),
            "trained_with": "; ".join(map(environment_text, folder.environments())) or "not recorded",
            "settings": json.dumps(settings, sort_keys=True, default=str),
        })  # fmt: skip
    notes: list[str] = []
    if not infos:
        return [], notes
    runs = pd.DataFrame(infos)
    nets = []
    for (arch, depth, shortcut), of_net in runs.groupby(["arch", "depth", "shortcut"], sort=False):
        configs = sorted(of_net.groupby("settings"), key=lambda kv: (-kv[1].steps.iloc[0], -len(kv[1]), kv[0]))
        chosen_settings, chosen = configs[0]
        for _, other in configs[1:]:
            sweeps = ", ".join(sorted(set(other.sweep)))
            notes.append(
                f"{NetIdentity(arch, int(depth), shortcut).name}: left out {len(other)} run(s) with other settings (sweep {sweeps}, "
                f"steps={other.steps.iloc[0]}); report that sweep's folder to see them"
            )
        runs_of_net = chosen.drop(columns="settings").reset_index(drop=True)
        differs = settings_differing(json.loads(chosen_settings))
        net = Net(arch, int(depth), shortcut, int(chosen.steps.iloc[0]), root, runs_of_net, pd.DataFrame(), differs)
        net.metrics = df[df.run.isin(net.usable.run)]
        for r in net.runs.itertuples():
            if r.status not in ("done", "running"):
                notes.append(f"{net.cli_name} seed {r.seed}: {r.status} at step {r.last_step}; left out ({r.run})")
        nets.append(net)
    nets.sort(key=lambda n: (n.arch != "plain", n.shortcut, n.depth))
    return nets, notes


# --------------------------------------------------------------------------- provenance


def _seeds(runs: pd.DataFrame) -> str:
    return ",".join(str(s) for s in sorted(set(runs.seed)))


def trained_with(nets: list[Net]) -> list[str]:
    """The distinct environments (code commit, precision, device, torch) the shown runs trained in."""
    return sorted({e for n in nets for line in n.usable.trained_with for e in line.split("; ")})


def provenance_text(nets: list[Net], commit: str) -> str:
    """The footer every figure carries: data, steps, seeds, settings that are not the paper's, code."""
    datasets = sorted({d for n in nets for d in n.usable.dataset})
    steps = sorted({n.steps for n in nets})
    steps_text = "steps=" + "/".join(map(str, steps)) + ("" if steps == [paper.STEPS] else f" (paper: {paper.STEPS})")
    seeds = {_seeds(n.usable) for n in nets}
    seeds_text = (
        f"seeds {seeds.pop()}"
        if len(seeds) == 1
        else "seeds " + "; ".join(f"{n.name}: {_seeds(n.usable)}" for n in nets)
    )
    differs = {}
    for n in nets:
        differs.update({k: v for k, v in n.differs.items() if k != "steps"})
    lines = [f"{' + '.join(datasets)}  ·  {steps_text}  ·  {seeds_text}  ·  report code {commit}  ·  {datetime.date.today()}",
             "trained with " + " | ".join(trained_with(nets))]
    if differs:
        lines.append(
            "not the paper's: " + ", ".join(f"{k}={ours} (paper: {theirs})" for k, (ours, theirs) in differs.items())
        )
    return "\n".join(lines)


def net_record(net: Net) -> dict:
    return {
        "net": net.name, "arch": net.arch, "depth": net.depth, "shortcut": net.shortcut, "steps": net.steps,
        "paper_steps": paper.STEPS,
        "settings_not_the_papers": {k: {"ours": a, "paper": b} for k, (a, b) in net.differs.items()},
        "runs": net.runs[["run", "seed", "status", "last_step", "dataset", "trained_with"]].to_dict("records"),
    }  # fmt: skip


# --------------------------------------------------------------------------- figures


def new_figure(name: str, nrows: int, ncols: int, **kwargs):
    fig = Figure(figsize=FIGSIZE[name], dpi=DPI)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def finish(fig: Figure, title: str, footer: str, out: Path, name: str) -> list[Path]:
    """Title on top, provenance below, a tight layout between; PNG and PDF of the same figure."""
    fig.suptitle(title, fontsize=14, fontweight="bold")
    width = int(fig.get_figwidth() * 72 / (8.5 * 0.56))  # characters of 8.5 pt DejaVu Sans across the figure
    footer = "\n".join(textwrap.fill(line, width) for line in footer.splitlines())
    fig.text(0.01, 0.01, footer, fontsize=8.5, color="0.3", va="bottom", ha="left", family="DejaVu Sans")
    footer_height = (footer.count("\n") + 1) * 8.5 * 1.45 / 72 / fig.get_figheight()
    fig.tight_layout(rect=(0, footer_height + 0.02, 1, 0.995))
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    # The PDF backend subsets fonts through fontTools, which logs every table at INFO: inside a Hydra
    # sweep (root logger at INFO) that is dozens of lines per figure.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    for path in paths:
        fig.savefig(path, dpi=DPI)
    return paths


def curve(net: Net, split: str) -> pd.DataFrame | None:
    """Error % per step: mean, min and max over the net's runs (a run's row only where it reached that step)."""
    rows = net.metrics[net.metrics.split == split]
    if rows.empty:
        return None
    table = rows.pivot_table(index="step", columns="run", values="error") * 100
    return pd.DataFrame({"mean": table.mean(axis=1), "min": table.min(axis=1), "max": table.max(axis=1)})


def draw(ax, net: Net, split: str, linestyle: str, linewidth: float, label: str | None = None) -> float | None:
    """One net's curve on `ax` (x in 1e4 iterations); returns its lowest error, for the off-scale check."""
    c = curve(net, split)
    if c is None:
        return None
    x = c.index.to_numpy() / 1e4
    ax.plot(x, c["mean"], color=net.colour, ls=linestyle, lw=linewidth, label=label, solid_capstyle="round")
    if len(net.usable) > 1:
        ax.fill_between(x, c["min"], c["max"], color=net.colour, alpha=0.18 if split == "test" else 0.1, lw=0)
    return float(c["mean"].min())


def auto_ymax(nets: list[Net]) -> float:
    """The paper's 0-20% for full-length runs; shortened runs end far higher, so show all of their curves."""
    errors = [100 * n.metrics.error.max() for n in nets if not n.metrics.empty]
    if not errors or all(n.steps >= paper.STEPS for n in nets):
        return 20.0
    return float(min(100, 10 * np.ceil(max(errors) / 10)))


def style_axes(ax, nets: list[Net], ymax: float, lowest: list[float]) -> None:
    max_steps = max((n.steps for n in nets), default=paper.STEPS)
    ax.set_xlim(0, max_steps / 1e4)
    ax.set_ylim(0, ymax)
    ax.set_xlabel("iter. (1e4)")
    ax.set_ylabel("error (%)")
    lowest = [v for v in lowest if v is not None]
    if lowest and min(lowest) > ymax:
        ax.text(0.5, 0.5, f"every curve is above {ymax:g}%\n(lowest: {min(lowest):.1f}%); see --ymax",
                transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.35")  # fmt: skip


def steps_note(nets: list[Net]) -> str:
    steps = sorted({n.steps for n in nets})
    if steps == [paper.STEPS]:
        return ""
    return f"steps={'/'.join(map(str, steps))} (paper: {paper.STEPS})"


def empty_panel(ax, text: str) -> None:
    ax.set_xlim(0, paper.STEPS / 1e4)
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.4")
    ax.set_xlabel("iter. (1e4)")
    ax.set_ylabel("error (%)")


def figure1(nets: list[Net], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[Net]]:
    """Training (left) and test (right) error of plain-20 and plain-56. Returns files, skips, nets drawn."""
    by_key = {n.key: n for n in nets if len(n.usable)}
    wanted = [NetIdentity.of("plain", 20), NetIdentity.of("plain", 56)]
    shown = [by_key[k] for k in wanted if k in by_key]
    missing = [k.name for k in wanted if k not in by_key]
    if not shown:
        return [], ["Figure 1: needs plain-20 and plain-56"], []
    skipped = [f"Figure 1: no {' or '.join(missing)} (drawn without)"] if missing else []
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure1", 1, 2)
        note = steps_note(shown)
        for ax, split, title in zip(axes[0], ("train", "test"), ("training error", "test error")):
            mixed = len({n.steps for n in shown}) > 1
            lowest = [draw(ax, n, split, "-", TEST_LW, n.legend_label("layers", steps=mixed)) for n in shown]
            style_axes(ax, shown, ymax, lowest)
            ax.set_title(title + (f"\n{note}" if note else ""))
            ax.legend(loc="best", frameon=True, framealpha=0.9)
        footer = provenance_text(shown, commit)
        paths = finish(fig, "Figure 1: plain-20 vs plain-56 on CIFAR-10", footer, out, "figure1")
    return paths, skipped, shown


def figure6(nets: list[Net], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[Net]]:
    """Three panels: plain nets, ResNets, ResNet-110 vs 1202. Dashed = training error, bold = test error."""
    by_key = {n.key: n for n in nets if len(n.usable)}
    wanted = [[NetIdentity.of(arch, d) for d in depths] for _, arch, depths in paper.FIGURE6_PANELS]
    panels = [[by_key[k] for k in keys if k in by_key] for keys in wanted]
    drawn = {n.key for panel in panels for n in panel}
    skipped = []
    for side, keys, panel in zip(FIGURE6_SIDES, wanted, panels):
        missing = [k.name for k in keys if k not in by_key]
        if not panel:
            skipped.append(f"Figure 6 {side}: needs {' and '.join(missing)}")
        elif missing:
            skipped.append(f"Figure 6 {side}: no {', '.join(missing)} (drawn without)")
    left_out = [n.cli_name for n in nets if n.key not in drawn and len(n.usable)]
    if left_out:
        skipped.append(f"Figure 6: {', '.join(left_out)} not in the paper's panels (see Table 6, Figure 7)")
    if not drawn:
        return [], ["Figure 6: needs plain or ResNet runs of depth 20, 32, 44, 56, 110 or 1202"] + skipped[-1:], []
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure6", 1, 3)
        for ax, (title, _, _), keys, panel in zip(axes[0], paper.FIGURE6_PANELS, wanted, panels):
            if not panel:
                empty_panel(ax, "needs " + " and ".join(k.name for k in keys if k not in by_key))
                ax.set_ylim(0, ymax)
                ax.set_title(title)
                continue
            lowest, mixed = [], len({n.steps for n in panel}) > 1
            for n in panel:
                lowest.append(draw(ax, n, "train", (0, (4, 2.5)), TRAIN_LW))
                lowest.append(draw(ax, n, "test", "-", TEST_LW, n.legend_label(steps=mixed)))
            style_axes(ax, panel, ymax, lowest)
            note = steps_note(panel)
            ax.set_title(title + (f"\n{note}" if note else ""))
            handles, labels = ax.get_legend_handles_labels()
            handles += [
                Line2D([], [], color="0.35", ls=(0, (4, 2.5)), lw=TRAIN_LW),
                Line2D([], [], color="0.35", lw=TEST_LW),
            ]
            labels += ["training error (dashed)", "test error (bold)"]
            ax.legend(handles, labels, loc="best", frameon=True, framealpha=0.9)
        footer = provenance_text([n for panel in panels for n in panel], commit)
        paths = finish(
            fig, "Figure 6: training on CIFAR-10 (dashed: training error, bold: test error)", footer, out, "figure6"
        )
    return paths, skipped, [n for n in nets if n.key in drawn]


def figure7_stats(
    nets: list[Net], data_root, device: str, max_images: int | None, verbose: bool
) -> tuple[pd.DataFrame, list[str]]:
    """Std of every 3x3 layer's response per finished run: columns net, arch, depth, shortcut, run, seed, layer, std."""
    rows, skipped = [], []
    for net in nets:
        if net.done.empty:
            skipped.append(f"Figure 7 {net.cli_name}: no finished run (needs a final checkpoint)")
            continue
        for r in net.done.itertuples():
            if verbose:  # a forward pass over the test set per run: say what is taking the time
                print(f"  figure 7: {net.cli_name} seed {r.seed} on {device}", flush=True)
            try:
                stds = run_response_stds(net.root / r.run, data_root, device, max_images)
            except Unavailable as e:
                skipped.append(f"Figure 7 {net.cli_name} seed {r.seed}: {e}")
                continue
            rows += [{"net": net.name, "arch": net.arch, "depth": net.depth, "shortcut": net.shortcut, "run": r.run,
                      "seed": r.seed, "layer": i, "std": s} for i, s in enumerate(stds, start=1)]  # fmt: skip
    return pd.DataFrame(rows), skipped


def figure7(nets: list[Net], stats: pd.DataFrame, out: Path, commit: str, n_images: str) -> list[Path]:
    """Std of layer responses, in layer order (top) and sorted by magnitude (bottom)."""
    shown = [n for n in nets if not stats.empty and (stats.net == n.name).any()]
    mixed = len({n.steps for n in shown}) > 1
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure7", 2, 1)
        top, bottom = axes[0][0], axes[1][0]
        for net in shown:
            per_run = stats[stats.net == net.name].pivot_table(index="layer", columns="run", values="std")
            ordered = per_run.to_numpy()
            sorted_ = -np.sort(-ordered, axis=0)  # each run sorted on its own, then averaged
            ls = "--" if net.arch == "plain" else ("-" if net.shortcut == "A" else "-.")
            notes = ([f"{per_run.shape[1]} runs"] if per_run.shape[1] > 1 else []) + (
                [f"steps={net.steps}"] if mixed else []
            )
            label = net.name + (f" ({'; '.join(notes)})" if notes else "")
            for ax, values in ((top, ordered), (bottom, sorted_)):
                x = np.arange(1, len(values) + 1)
                # plain nets dashed and on top, so a ResNet of the same depth cannot hide them
                zorder = 3 if net.arch == "plain" else 2
                ax.plot(
                    x, values.mean(1), color=net.colour, ls=ls, lw=1.8, label=label, marker="o", ms=2.5, zorder=zorder
                )
                if values.shape[1] > 1:
                    ax.fill_between(x, values.min(1), values.max(1), color=net.colour, alpha=0.15, lw=0)
        top.set_title("in layer order")
        bottom.set_title("sorted by magnitude")
        for ax in (top, bottom):
            ax.set_xlabel("layer index")
            ax.set_ylabel("std")
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        top.legend(loc="best", ncols=2 if len(shown) > 4 else 1, frameon=True, framealpha=0.9)
        footer = provenance_text(shown, commit) + f"\nresponses after BN, before ReLU/addition; {n_images}"
        return finish(fig, "Figure 7: std of each 3x3 layer's response on CIFAR-10 test images", footer, out, "figure7")


# --------------------------------------------------------------------------- Table 6


def paper_number(net: Net) -> tuple[float | None, float | None, float | None, str]:
    """(paper's test error, its best, its std, as printed) for this net; None where the paper has none."""
    if net.arch == "plain":
        return None, None, None, paper.PLAIN_110 if net.depth == 110 else "—"
    if net.shortcut != "A" or net.depth not in paper.TEST_ERROR:
        return None, None, None, "—"
    if net.depth == 110:
        mean, best, std = paper.TEST_ERROR[110], paper.RESNET110_BEST, paper.RESNET110_STD
        return mean, best, std, f"{best} best ({mean} ± {std})"
    return paper.TEST_ERROR[net.depth], None, None, f"{paper.TEST_ERROR[net.depth]}"


def final_errors(net: Net, split: str) -> pd.Series:
    """Error % at the last logged step of each finished run (no selection on the test set)."""
    rows = net.metrics[(net.metrics.split == split) & net.metrics.run.isin(net.done.run)]
    last = rows.sort_values("step").groupby("run").tail(1)
    return last.set_index("run").error * 100


def table6_rows(nets: list[Net], commit: str) -> tuple[pd.DataFrame, list[str]]:
    rows, skipped = [], []
    for net in nets:
        if net.done.empty:
            state = ", ".join(
                f"seed {r.seed} {r.status} at step {r.last_step}/{net.steps}" for r in net.runs.itertuples()
            )
            skipped.append(f"Table 6 {net.cli_name}: no finished run ({state})")
            continue
        row = {"net": net.name, "arch": net.arch, "depth": net.depth, "shortcut": net.shortcut,
               "params": net.key.parameters, "steps": net.steps,
               "paper_steps": paper.STEPS, "runs": len(net.done), "runs_unfinished": len(net.runs) - len(net.done),
               "seeds": _seeds(net.done)}  # fmt: skip
        for split in ("test", "val"):
            errors = final_errors(net, split)
            row[f"{split}_error_mean"] = errors.mean() if len(errors) else np.nan
            row[f"{split}_error_std"] = errors.std(ddof=1) if len(errors) > 1 else np.nan  # sample std over runs
            row[f"{split}_error_best"] = errors.min() if len(errors) else np.nan
        papers, papers_best, papers_std, _ = paper_number(net)
        row.update({"paper_test_error": papers, "paper_test_error_best": papers_best, "paper_test_error_std": papers_std,
                    "difference": row["test_error_mean"] - papers if papers is not None else np.nan,
                    "dataset": " + ".join(sorted(set(net.done.dataset))), "trained_with": " | ".join(trained_with([net])),
                    "report_code_commit": commit})  # fmt: skip
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        numeric = [c for c in table.columns if c.startswith(("test_", "val_", "paper_test", "difference"))]
        table[numeric] = table[numeric].astype(float).round(4)
    return table, skipped


def _pct(value: float, sign: bool = False) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def _mean_std(mean: float, std: float) -> str:
    return _pct(mean) if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def table6_markdown(table: pd.DataFrame, nets: list[Net], commit: str) -> str:
    by_name = {n.name: n for n in nets}
    lines = [
        "# Table 6: classification error on the CIFAR-10 test set (%)", "",
        f"Data: {' + '.join(sorted(set(table.dataset)))} · report code {commit} · {datetime.date.today()}  ",
        f"Trained with: {' | '.join(trained_with(nets))}  ",
        "Error at the last iteration of each finished run (no selection on the test set); mean ± sample std "
        "over runs, and the best run. Paper: He et al. 2016, Table 6 (option A shortcuts; ResNet-110 is best "
        "(mean ± std) of 5 runs; the paper gives plain nets no row). ours − paper: our mean minus the paper's "
        "number (ResNet-110: its mean).", "",
        "| net | params | steps | runs (seeds) | test error | best | val error | best | paper | ours − paper |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in table.itertuples():
        steps = f"{r.steps}" + ("" if r.steps == paper.STEPS else f" (paper: {paper.STEPS})")
        runs = f"{r.runs} ({r.seeds})" + (f", {r.runs_unfinished} unfinished" if r.runs_unfinished else "")
        lines.append(
            f"| {r.net} | {r.params / 1e6:.2f}M ({r.params:,}) | {steps} | {runs} "
            f"| {_mean_std(r.test_error_mean, r.test_error_std)} | {_pct(r.test_error_best)} "
            f"| {_mean_std(r.val_error_mean, r.val_error_std)} | {_pct(r.val_error_best)} "
            f"| {paper_number(by_name[r.net])[3]} | {_pct(r.difference, sign=True)} |"
        )
    differs = {}
    for n in nets:
        differs.update({k: v for k, v in n.differs.items() if k != "steps"})
    if differs:
        lines += [
            "",
            "Settings that are not the paper's: " + ", ".join(f"{k}={a} (paper: {b})" for k, (a, b) in differs.items()),
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the report


@dataclass
class Report:
    out_dir: Path
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


ARTIFACTS = ("curves.csv", "figure1.png", "figure1.pdf", "figure6.png", "figure6.pdf", "figure7.png", "figure7.pdf", "figure7.csv",
             "table6.md", "table6.csv", "provenance.json")  # fmt: skip


def make_report(
    root: str | Path,
    out_dir: str | Path | None = None,
    ymax: float | None = None,
    figure7_on: bool = True,
    data_root: str | Path | None = None,
    device: str = "cpu",
    figure7_images: int | None = None,
    verbose: bool = True,
    command: str | None = None,
) -> Report:
    """Every artifact the runs under `root` allow, into `out_dir` (default <root>/report)."""
    root = Path(root)
    out = Path(out_dir) if out_dir is not None else root / "report"
    nets, notes = collect_nets(root)
    if ymax is None:
        ymax = auto_ymax(nets)
    if verbose:
        print(f"report of {root} -> {out}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:  # a stale figure from an earlier report must not pass for this one
        (out / name).unlink(missing_ok=True)
    report, commit = Report(out, notes=notes), code_commit()
    if not nets:
        report.skipped.append(f"everything: no runs with metrics under {root}")
    provenance = {"generated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "runs_root": str(root.resolve()), "report_code_commit": commit, "command": command or " ".join(sys.argv),
                  "artifacts": {}}  # fmt: skip

    def record(name: str, paths: list[Path], shown: list[Net], **extra) -> None:
        report.written += paths
        provenance["artifacts"][name] = {
            "files": [p.name for p in paths],
            "nets": [net_record(n) for n in shown],
            **extra,
        }

    @contextlib.contextmanager
    def attempt(what: str):
        """One artifact's unexpected failure is reported in a line, and the others are still made."""
        try:
            yield
        except Exception as e:
            report.skipped.append(f"{what}: failed ({type(e).__name__}: {e})")

    if nets:  # every curve drawn, as tidy rows: what a reader re-plots or checks the figures against
        pd.concat([n.metrics for n in nets], ignore_index=True).to_csv(out / "curves.csv", index=False)
        record("curves", [out / "curves.csv"], nets)

    for name, make in (("figure1", figure1), ("figure6", figure6)) if nets else ():
        with attempt(name.replace("figure", "Figure ")):
            paths, skipped, shown = make(nets, out, ymax, commit)
            report.skipped += skipped
            if paths:
                record(name, paths, shown, ymax=ymax)

    with attempt("Table 6"):
        table, skipped = table6_rows(nets, commit)
        report.skipped += skipped
        if table.empty:
            report.skipped.append("Table 6: needs at least one finished run")
        else:
            table.to_csv(out / "table6.csv", index=False)
            (out / "table6.md").write_text(table6_markdown(table, nets, commit))
            record("table6", [out / "table6.md", out / "table6.csv"], [n for n in nets if not n.done.empty])

    with attempt("Figure 7"):
        if not figure7_on:
            report.skipped.append("Figure 7: turned off (--no-figure7)")
        elif nets:
            stats, skipped = figure7_stats(nets, data_root, device, figure7_images, verbose)
            report.skipped += skipped
            if stats.empty:
                report.skipped.append("Figure 7: needs a finished run with its checkpoint and data")
            else:
                stats.to_csv(out / "figure7.csv", index=False)
                n_images = (
                    f"a fixed random {figure7_images} of the test images" if figure7_images else "all test images"
                )
                paths = figure7(nets, stats, out, commit, n_images)
                shown = [n for n in nets if (stats.net == n.name).any()]
                record("figure7", [*paths, out / "figure7.csv"], shown, images=n_images)

    provenance["skipped"], provenance["notes"] = report.skipped, report.notes
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, default=str) + "\n")
    report.written.append(out / "provenance.json")
    if verbose:
        for path in report.written:
            print(f"  wrote   {path.name}")
        for line in report.skipped:
            print(f"  skipped {line}")
        for line in report.notes:
            print(f"  note    {line}")
    return report


class ReportCallback(Callback):
    """At the end of a sweep, its report into <sweep dir>/report/ (`report=false` turns it off).

    Any failure is printed in one line and swallowed: the sweep's own summary must still be seen.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if not config.get("report", True):
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            make_report(sweep_dir, sweep_dir / "report", device=device, command=f"end of sweep {sweep_dir}")
        except Exception as e:
            print(
                f"report failed ({type(e).__name__}: {e}); retry with: python -m resnet_repro.report {sweep_dir}",
                file=sys.stderr,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_repro.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="a runs folder (out_dir) or one sweep's folder")
    parser.add_argument("-o", "--out", help="where the artifacts go (default: <root>/report)")
    parser.add_argument(
        "--ymax", type=float, default=None,
        help="top of the error axis in %% (default: 20 as the paper for full-length runs; for shortened runs, "
        "enough to show every curve)",
    )
    parser.add_argument("--data-root", help="CIFAR-10 location for Figure 7, instead of each run's data.root")
    parser.add_argument("--device", default="auto", help="device for Figure 7's forward passes: auto, cpu, cuda")
    parser.add_argument(
        "--figure7-images", type=int, help="use a fixed random N of the test images for Figure 7 (faster)"
    )
    parser.add_argument("--no-figure7", action="store_true", help="skip Figure 7 (it runs every final checkpoint)")
    args = parser.parse_args(argv)
    if args.ymax is not None and args.ymax <= 0:
        parser.error(f"--ymax {args.ymax:g} must be positive, e.g. --ymax 100")
    if args.figure7_images is not None and args.figure7_images <= 0:
        parser.error(f"--figure7-images {args.figure7_images} must be positive, or left out for all test images")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            parser.error(f"--device {device}: no CUDA device here; use --device cpu (or auto)")
    except RuntimeError:
        parser.error(f"--device {device} is not a device torch knows; use auto, cpu or cuda")
    try:
        report = make_report(
            args.root,
            args.out,
            args.ymax,
            not args.no_figure7,
            args.data_root,
            device,
            args.figure7_images,
            command=" ".join(["python -m resnet_repro.report", *(argv if argv is not None else sys.argv[1:])]),
        )
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if len(report.written) > 1 else 1  # provenance.json alone means nothing could be made


if __name__ == "__main__":
    sys.exit(main())
