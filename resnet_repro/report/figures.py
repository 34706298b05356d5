"""Figure 1 and Figure 6: error curves over training, as the paper draws them; and the pairs figure (not the
paper's): each plain net beside its ResNet twin of equal depth, in one panel per depth.

Each returns the files it wrote, what it skipped (in one line each, with why) and the nets it drew. Every title is
made from the nets drawn, and every curve point above a clipped error axis is marked on its top edge and counted in
the legend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from .. import paper
from ..models import Net
from .nets import NetRuns
from .provenance import provenance_text
from .style import (
    STYLE,
    axis_tops,
    draw,
    finish,
    legend_below,
    legend_label,
    new_figure,
    paper_axis_title,
    row_share,
    split_handles,
    steps_note,
    style_axes,
    x_unit,
)

FIGURE6_SIDES = ("left", "middle", "right")


def names(nets: list[NetRuns]) -> str:
    """'plain-20 vs plain-56', 'plain-20': the nets a figure or a panel draws, as its title says them."""
    return " vs ".join(n.display_name for n in nets)


def figure1_title(shown: list[NetRuns], missing: list[str]) -> str:
    return f"Figure 1: {names(shown)} on CIFAR-10" + (f" (no {' or '.join(missing)} run)" if missing else "")


def figure6_panels(nets: list[NetRuns]) -> list[tuple[str, list[NetRuns]]]:
    """Figure 6's panels that have a net drawn: (title made from the nets drawn, those nets)."""
    by_net = {n.net: n for n in nets if len(n.usable)}
    panels = []
    for title, arch, depths in paper.FIGURE6_PANELS:
        drawn = [by_net[k] for k in (Net.of(arch, d) for d in depths) if k in by_net]
        if drawn:  # "ResNet-110 vs ResNet-1202" says its nets already: it becomes the names of those drawn
            panels.append(
                (names(drawn) if " vs " in title else f"{title}: {', '.join(n.display_name for n in drawn)}", drawn)
            )
    return panels


def pairs_of(nets: list[NetRuns]) -> list[tuple[NetRuns, NetRuns]]:
    """(plain net, its ResNet twin) for every depth where both ran: the pairs figure's panels."""
    by_net = {n.net: n for n in nets if len(n.usable)}
    return [
        (by_net[Net.of("plain", n.depth)], n)
        for n in nets
        if len(n.usable) and n.arch == "resnet" and n.shortcut == "A" and Net.of("plain", n.depth) in by_net
    ]


def figure1(nets: list[NetRuns], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[NetRuns]]:
    """Training (left, dashed) and test (right, solid) error of plain-20 and plain-56; below, where the axis had to
    rise above the paper's, the same on the paper's axis (axis_tops)."""
    by_net = {n.net: n for n in nets if len(n.usable)}
    wanted = [Net.of("plain", 20), Net.of("plain", 56)]
    shown = [by_net[k] for k in wanted if k in by_net]
    missing = [k.cli_name for k in wanted if k not in by_net]
    if not shown:
        return [], ["Figure 1: needs plain-20 and plain-56"], []
    skipped = [f"Figure 1: no {' or '.join(missing)} (drawn without)"] if missing else []
    max_steps = max(n.steps for n in shown)
    unit = x_unit(max_steps)
    tops = axis_tops(shown, ymax)
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure1", len(tops), 2, height_share=row_share(tops))
        note = steps_note(shown)
        mixed = len({n.steps for n in shown}) > 1
        for row, (panels, top) in enumerate(zip(axes, tops)):
            for ax, split, title in zip(panels, ("train", "test"), ("training error", "test error")):
                # the nets are named once, in the top row's legends; the lower row's say what it clips
                lowest = [draw(ax, n, split, unit[0], None if row else legend_label(n, "layers", steps=mixed))
                          for n in shown]  # fmt: skip
                marks, counts = style_axes(ax, max_steps, unit, top, lowest)
                title += " (dashed)" if split == "train" else " (solid)"
                ax.set_title(paper_axis_title(top) if row else title + (f"\n{note}" if note else ""))
                handles, labels = ax.get_legend_handles_labels()
                legend_below(ax, handles + marks, labels + counts)
        footer = provenance_text(shown, commit)
        paths = finish(fig, figure1_title(shown, missing), footer, out, "figure1")
    return paths, skipped, shown


def draw_panels(axes, panels: list[tuple[str, list[NetRuns]]], tops: list[float], unit: tuple[float, str]) -> None:
    """Figure 6 and the pairs: each panel's nets, training error dashed and test error solid, in every row of
    `axes` (one per axis top, axis_tops); the top row's legends name the nets and the line styles."""
    for row, (row_axes, top) in enumerate(zip(axes, tops)):
        for ax, (title, panel) in zip(row_axes, panels):
            lowest, mixed = [], len({n.steps for n in panel}) > 1
            for n in panel:
                lowest.append(draw(ax, n, "train", unit[0]))
                lowest.append(draw(ax, n, "test", unit[0], None if row else legend_label(n, steps=mixed)))
            marks, counts = style_axes(ax, max(n.steps for n in panel), unit, top, lowest)
            note = steps_note(panel)
            ax.set_title(paper_axis_title(top) if row else title + (f"\n{note}" if note else ""))
            handles, labels = ax.get_legend_handles_labels()
            styles, style_names = split_handles() if not row else ([], [])
            legend_below(ax, handles + styles + marks, labels + style_names + counts)


def figure6(nets: list[NetRuns], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[NetRuns]]:
    """The paper's three panels, plain nets, ResNets, ResNet-110 vs 1202, each where one of its nets ran.
    Dashed = training error, solid = test error."""
    by_net = {n.net: n for n in nets if len(n.usable)}
    wanted = [[Net.of(arch, d) for d in depths] for _, arch, depths in paper.FIGURE6_PANELS]
    panels = [[by_net[k] for k in keys if k in by_net] for keys in wanted]
    drawn = {n.net for panel in panels for n in panel}
    skipped = []
    for side, keys, panel in zip(FIGURE6_SIDES, wanted, panels):
        missing = [k.cli_name for k in keys if k not in by_net]
        if not panel:
            skipped.append(f"Figure 6 {side}: needs {' and '.join(missing)}")
        elif missing:
            skipped.append(f"Figure 6 {side}: no {', '.join(missing)} (drawn without)")
    left_out = [n.cli_name for n in nets if n.net not in drawn and len(n.usable)]
    if left_out:
        skipped.append(f"Figure 6: {', '.join(left_out)} not in the paper's panels (see Table 6, Figure 7)")
    if not drawn:
        return [], ["Figure 6: needs plain or ResNet runs of depth 20, 32, 44, 56, 110 or 1202"] + skipped[-1:], []
    max_steps = max(n.steps for panel in panels for n in panel)
    unit = x_unit(max_steps)  # one unit for every panel
    # A panel none of whose nets ran is left out (`skipped` says what it needs), not drawn empty.
    shown_panels = figure6_panels(nets)
    shown = [n for n in nets if n.net in drawn]
    tops = axis_tops(shown, ymax)
    with matplotlib.rc_context(STYLE):
        width_share = len(shown_panels) / len(panels)
        fig, axes = new_figure("figure6", len(tops), len(shown_panels), width_share, row_share(tops))
        draw_panels(axes, shown_panels, tops, unit)
        footer = provenance_text(shown, commit)  # ResNet-110 is in two panels: once
        title = "Figure 6: training on CIFAR-10 (dashed: training error, solid: test error)"
        paths = finish(fig, title, footer, out, "figure6")
    return paths, skipped, shown


def pairs_title(pairs: list[tuple[NetRuns, NetRuns]]) -> str:
    return "Plain vs ResNet at equal depth: " + " | ".join(names(list(p)) for p in pairs)


def pairs(nets: list[NetRuns], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[NetRuns]]:
    """Not a figure of the paper: each plain net and its ResNet twin in one panel (one panel per depth where both
    ran), so that the shortcut's effect at equal depth is seen side by side. Dashed = training, solid = test error."""
    twins = pairs_of(nets)
    if not twins:
        return [], ["pairs: needs a plain net and a ResNet of one depth"], []
    shown = [n for pair in twins for n in pair]
    unit = x_unit(max(n.steps for n in shown))
    tops = axis_tops(shown, ymax)
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("pairs", len(tops), len(twins), max(0.8, len(twins) / 2), row_share(tops))
        panels = [(f"{pair[0].depth} layers: {names(list(pair))}", list(pair)) for pair in twins]
        draw_panels(axes, panels, tops, unit)
        # the panels' titles name the nets; one pair's names would not fit beside the line styles' key
        title = "Plain vs ResNet at equal depth\n(dashed: training error, solid: test error)"
        paths = finish(fig, title, provenance_text(shown, commit), out, "pairs")
    return paths, [], shown
