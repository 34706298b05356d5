"""How the report's figures look, and the drawing every figure shares: sizes, colours, lines, the footer."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import ScaledTranslation

from .. import paper
from .nets import NetRuns

# One colour per net across all figures (plain-20 is the same orange in Figure 1, 6, 7 and the pairs): plain nets in
# warm colours, ResNets in cool ones, so that a plain net and its ResNet twin drawn side by side never share one.
NET_COLOURS = {
    ("plain", 20): "#E69F00",
    ("plain", 32): "#C9A227",
    ("plain", 44): "#CC6677",
    ("plain", 56): "#B2182B",
    ("plain", 110): "#882255",
    ("plain", 1202): "#5E3C58",
    ("resnet", 20): "#56B4E9",
    ("resnet", 32): "#44AA99",
    ("resnet", 44): "#117733",
    ("resnet", 56): "#0072B2",
    ("resnet", 110): "#332288",
    ("resnet", 1202): "#AA4499",
}
OTHER_COLOURS = ("#000000", "#777777", "#8C564B", "#17BECF", "#9467BD")
DPI = 150
LEGEND_DROP = 0.55  # inches from the axes' bottom edge to a legend below them: clear of the tick labels and x label
FIGSIZE = {
    "figure1": (11.0, 4.8),
    "figure6": (16.0, 6.4),
    "figure7": (10.0, 8.5),
    "pairs": (11.0, 6.4),
}  # inches; pixels = inches * DPI
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12.5,
    "axes.labelsize": 12,
    "legend.fontsize": 10,
    "xtick.labelsize": 10.5,
    "ytick.labelsize": 10.5,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,
}
# One meaning per line style in every figure, as the paper draws Figure 6: dashed = training error, solid = test
# error (drawn bolder too). Nothing else is dashed (Figure 7's responses on the test set are solid, plain told from
# ResNet by its markers); colour = the net.
SPLIT_STYLE = {"train": {"ls": (0, (4, 2.5)), "lw": 1.4}, "test": {"ls": "-", "lw": 2.4}}
SPLIT_NAMES = {"train": "training error (dashed)", "test": "test error (solid)"}
CLIPPED_MARKER = {"marker": "^", "ms": 5, "ls": "none", "clip_on": False, "zorder": 5}  # a point above the axis
# The x axis in units that suit the run length, so that its ticks are round numbers: the paper's 1e4 iterations
# for long runs (64,000: 0-6.4), thousands for shortened ones (6,400: 0-6.4), plain iterations for short ones
# (600: 0-600; 60: 0-60, not 0.000-0.006 in units of 1e4).
X_UNITS = ((30_000, 1e4, "iter. (1e4)"), (5_000, 1e3, "iter. (1e3)"), (0, 1, "iter."))


def colour(net: NetRuns) -> str:
    """The net's colour in every figure; nets outside the paper's (other shortcuts, depths) get a fixed other one."""
    if net.shortcut in ("none", "A") and (net.arch, net.depth) in NET_COLOURS:
        return NET_COLOURS[(net.arch, net.depth)]
    key = sum(map(ord, f"{net.arch}{net.depth}{net.shortcut}"))  # not hash(): that changes between processes
    return OTHER_COLOURS[key % len(OTHER_COLOURS)]


def legend_label(net: NetRuns, style: str = "net", steps: bool = False) -> str:
    """e.g. 'ResNet-56 (3 runs)'; `steps` names the run length, for panels that mix lengths."""
    label = f"{net.depth}-layer" if style == "layers" else net.display_name
    notes = [f"{len(net.usable)} runs"] if len(net.usable) > 1 else []
    if steps:
        notes.append(f"steps={net.steps}")
    unfinished = net.usable[net.usable.status != "done"]
    if len(unfinished):
        notes.append(f"unfinished: step {int(unfinished.last_step.min())} of {net.steps}")
    return label + (f" ({'; '.join(notes)})" if notes else "")


def new_figure(name: str, nrows: int, ncols: int, width_share: float = 1.0, height_share: float = 1.0, **kwargs):
    """A figure of FIGSIZE[name] (its width times `width_share`: fewer panels, a narrower figure; its height times
    `height_share`: a second row)."""
    width, height = FIGSIZE[name]
    fig = Figure(figsize=(width * width_share, height * height_share), dpi=DPI)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def finish(fig: Figure, title: str, footer: str, out: Path, name: str) -> list[Path]:
    """Title on top, provenance below, a tight layout between; PNG and PDF of the same figure."""
    heading = fig.suptitle(title, fontsize=14, fontweight="bold")
    # A title made from the nets drawn can be wider than the figure: wrapped at words to the width it measures.
    overflow = heading.get_window_extent().width / (0.96 * fig.bbox.width)
    if overflow > 1:
        heading.set_text(textwrap.fill(title, int(len(title) / overflow)))
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


def curve(net: NetRuns, split: str) -> pd.DataFrame | None:
    """Error % per step: mean, min and max over the net's runs (a run's row only where it reached that step)."""
    rows = net.curves[net.curves.split == split]
    if rows.empty:
        return None
    table = rows.pivot_table(index="step", columns="run", values="error") * 100
    return pd.DataFrame({"mean": table.mean(axis=1), "min": table.min(axis=1), "max": table.max(axis=1)})


def x_unit(max_steps: int) -> tuple[float, str]:
    """(iterations per x unit, the axis label) for a figure whose longest run is `max_steps`."""
    return next((scale, label) for at_least, scale, label in X_UNITS if max_steps >= at_least)


def draw(ax, net: NetRuns, split: str, unit: float, label: str | None = None) -> float | None:
    """One net's curve of `split` on `ax` in its split's line style (x in `unit` iterations); returns its lowest
    error, for the off-scale check."""
    c = curve(net, split)
    if c is None:
        return None
    x = c.index.to_numpy() / unit
    # gid names the curve for the marks of points above a clipped axis (clipped_marks)
    ax.plot(
        x, c["mean"], color=colour(net), label=label, gid=f"{net.display_name} {split}", solid_capstyle="round",
        **SPLIT_STYLE[split],
    )  # fmt: skip
    if len(net.usable) > 1:
        ax.fill_between(x, c["min"], c["max"], color=colour(net), alpha=0.18 if split == "test" else 0.1, lw=0)
    return float(c["mean"].min())


def split_handles() -> tuple[list[Line2D], list[str]]:
    """Legend entries that say what dashed and solid mean."""
    return [Line2D([], [], color="0.35", **SPLIT_STYLE[s]) for s in SPLIT_NAMES], list(SPLIT_NAMES.values())


def legend_below(ax, handles=None, labels=None) -> None:
    """The legend under the axes, below the x label: outside the plotting area, so it never covers a curve.
    Two columns where the labels are short enough to leave the axes their width."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    ncols = 2 if len(labels) > 1 and max(map(len, labels)) <= 26 else 1
    below = ax.transAxes + ScaledTranslation(0, -LEGEND_DROP, ax.figure.dpi_scale_trans)
    ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0),
        bbox_transform=below,
        ncols=ncols,
        frameon=False,
        handlelength=3,
    )


def auto_ymax(nets: list[NetRuns]) -> float:
    """The top of the error axis (%). Shortened runs end far higher than the paper's: every curve is shown whole.
    Full-length runs: the paper's 0-20%, raised to the next 10 that holds each curve past the first tenth of its
    schedule (there the paper's curves, too, have long come down onto its axis). The JPEG copy's errors run about
    4 points above the paper's; on its 20% axis half of plain-20's test curve would be a row of clipped marks."""
    drawn = [n for n in nets if not n.curves.empty]
    if not drawn:
        return paper.ERROR_AXIS
    if any(n.steps < paper.STEPS for n in drawn):
        return float(min(100, 10 * np.ceil(max(100 * n.curves.error.max() for n in drawn) / 10)))
    later = [n.curves[(n.curves.step > n.steps / 10) & n.curves.split.isin(list(SPLIT_NAMES))] for n in drawn]
    top = max((100 * c.error.max() for c in later if not c.empty), default=0.0)
    return float(min(100, max(paper.ERROR_AXIS, 10 * np.ceil(top / 10))))


def axis_tops(nets: list[NetRuns], ymax: float) -> list[float]:
    """The top of each row's error axis in a figure of `nets`' curves. Full-length runs on an axis raised above the
    paper's 0-20% (to hold a curve's early, high part) get a second row on the paper's own axis: where the runs
    end, and where its figures are read. On 0-60% the final points of plain-20 and plain-56 would be a few
    millimetres apart. Shortened runs end far above the paper's axis: one row."""
    if ymax > paper.ERROR_AXIS and nets and all(n.steps == paper.STEPS for n in nets):
        return [ymax, paper.ERROR_AXIS]
    return [ymax]


def row_share(tops: list[float]) -> float:
    """A figure's height, as a share of its one-row height, for one row per axis top (the lower rows' legends are
    shorter: they only count clipped points)."""
    return 1 + 0.75 * (len(tops) - 1)


def paper_axis_title(top: float) -> str:
    return f"the same, on the paper's axis (0-{top:g}%)"


def clipped_marks(ax, ymax: float) -> tuple[list[Line2D], list[str]]:
    """Every curve point above the axis' top `ymax` is marked by a triangle on the top edge, in its curve's colour;
    returns legend entries that count them per curve ("plain-20 test error: 55 of 128 points above 20%")."""
    handles, labels = [], []
    for line in list(ax.lines):
        if not line.get_gid():
            continue
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        above = y > ymax
        if not above.any():
            continue
        mark = ax.plot(x[above], np.full(above.sum(), ymax), color=line.get_color(), **CLIPPED_MARKER)[0]
        net, split = line.get_gid().rsplit(" ", 1)
        handles.append(mark)
        labels.append(f"{net} {SPLIT_NAMES[split].split(' (')[0]}: {above.sum()} of {len(y)} points above {ymax:g}%")
    return handles, labels


def style_axes(
    ax, max_steps: int, unit: tuple[float, str], ymax: float, lowest: list[float | None]
) -> tuple[list[Line2D], list[str]]:
    """Limits and labels; returns the legend entries of the points above the top (clipped_marks)."""
    scale, label = unit
    ax.set_xlim(0, max_steps / scale)
    ax.set_ylim(0, ymax)
    ax.set_xlabel(label)
    ax.set_ylabel("error (%)")
    lowest = [v for v in lowest if v is not None]
    if lowest and min(lowest) > ymax:
        ax.text(
            0.5,
            0.5,
            f"every curve is above {ymax:g}%\n(lowest: {min(lowest):.1f}%); see --ymax",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=11,
            color="0.35",
        )
    return clipped_marks(ax, ymax)


def steps_note(nets: list[NetRuns]) -> str:
    steps = sorted({n.steps for n in nets})
    if steps == [paper.STEPS]:
        return ""
    return f"steps={'/'.join(map(str, steps))} (paper: {paper.STEPS})"
