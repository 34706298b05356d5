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
    draw,
    finish,
    legend_below,
    legend_label,
    new_figure,
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
    """Training (left, dashed) and test (right, solid) error of plain-20 and plain-56."""
    by_net = {n.net: n for n in nets if len(n.usable)}
    wanted = [Net.of("plain", 20), Net.of("plain", 56)]
    shown = [by_net[k] for k in wanted if k in by_net]
    missing = [k.cli_name for k in wanted if k not in by_net]
    if not shown:
        return [], ["Figure 1: needs plain-20 and plain-56"], []
    skipped = [f"Figure 1: no {' or '.join(missing)} (drawn without)"] if missing else []
    max_steps = max(n.steps for n in shown)
    unit = x_unit(max_steps)
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure1", 1, 2)
        note = steps_note(shown)
        mixed = len({n.steps for n in shown}) > 1
        for ax, split, title in zip(axes[0], ("train", "test"), ("training error", "test error")):
            lowest = [draw(ax, n, split, unit[0], legend_label(n, "layers", steps=mixed)) for n in shown]
            marks, counts = style_axes(ax, max_steps, unit, ymax, lowest)
            ax.set_title(title + (" (dashed)" if split == "train" else " (solid)") + (f"\n{note}" if note else ""))
            handles, labels = ax.get_legend_handles_labels()
            legend_below(ax, handles + marks, labels + counts)
        footer = provenance_text(shown, commit)
        paths = finish(fig, figure1_title(shown, missing), footer, out, "figure1")
    return paths, skipped, shown


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
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure6", 1, len(shown_panels), width_share=len(shown_panels) / len(panels))
        for ax, (title, panel) in zip(axes[0], shown_panels):
            lowest, mixed = [], len({n.steps for n in panel}) > 1
            for n in panel:
                lowest.append(draw(ax, n, "train", unit[0]))
                lowest.append(draw(ax, n, "test", unit[0], legend_label(n, steps=mixed)))
            marks, counts = style_axes(ax, max(n.steps for n in panel), unit, ymax, lowest)
            note = steps_note(panel)
            ax.set_title(title + (f"\n{note}" if note else ""))
            handles, labels = ax.get_legend_handles_labels()
            styles, style_names = split_handles()
            legend_below(ax, handles + styles + marks, labels + style_names + counts)
        footer = provenance_text([n for n in nets if n.net in drawn], commit)  # ResNet-110 is in two panels: once
        title = "Figure 6: training on CIFAR-10 (dashed: training error, solid: test error)"
        paths = finish(fig, title, footer, out, "figure6")
    return paths, skipped, [n for n in nets if n.net in drawn]


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
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("pairs", 1, len(twins), width_share=max(0.8, len(twins) / 2))
        for ax, pair in zip(axes[0], twins):
            lowest = []
            for n in pair:
                lowest.append(draw(ax, n, "train", unit[0]))
                lowest.append(draw(ax, n, "test", unit[0], legend_label(n, steps=len({m.steps for m in pair}) > 1)))
            marks, counts = style_axes(ax, max(n.steps for n in pair), unit, ymax, lowest)
            note = steps_note(list(pair))
            ax.set_title(f"{pair[0].depth} layers: {names(list(pair))}" + (f"\n{note}" if note else ""))
            handles, labels = ax.get_legend_handles_labels()
            styles, style_names = split_handles()
            legend_below(ax, handles + styles + marks, labels + style_names + counts)
        # the panels' titles name the nets; one pair's names would not fit beside the line styles' key
        title = "Plain vs ResNet at equal depth\n(dashed: training error, solid: test error)"
        paths = finish(fig, title, provenance_text(shown, commit), out, "pairs")
    return paths, [], shown
