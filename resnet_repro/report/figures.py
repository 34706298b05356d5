"""Figure 1 and Figure 6: error curves over training, as the paper draws them.

Each returns the files it wrote, what it skipped (in one line each, with why) and the nets it drew.
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


def figure1(nets: list[NetRuns], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[NetRuns]]:
    """Training (left, dashed) and test (right, bold) error of plain-20 and plain-56."""
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
            style_axes(ax, max_steps, unit, ymax, lowest)
            ax.set_title(title + (f"\n{note}" if note else ""))
            legend_below(ax)
        footer = provenance_text(shown, commit)
        paths = finish(fig, "Figure 1: plain-20 vs plain-56 on CIFAR-10", footer, out, "figure1")
    return paths, skipped, shown


def figure6(nets: list[NetRuns], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[NetRuns]]:
    """The paper's three panels, plain nets, ResNets, ResNet-110 vs 1202, each where one of its nets ran.
    Dashed = training error, bold = test error."""
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
    shown_panels = [(title, panel) for (title, _, _), panel in zip(paper.FIGURE6_PANELS, panels) if panel]
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure6", 1, len(shown_panels), width_share=len(shown_panels) / len(panels))
        for ax, (title, panel) in zip(axes[0], shown_panels):
            lowest, mixed = [], len({n.steps for n in panel}) > 1
            for n in panel:
                lowest.append(draw(ax, n, "train", unit[0]))
                lowest.append(draw(ax, n, "test", unit[0], legend_label(n, steps=mixed)))
            style_axes(ax, max(n.steps for n in panel), unit, ymax, lowest)
            note = steps_note(panel)
            ax.set_title(title + (f"\n{note}" if note else ""))
            handles, labels = ax.get_legend_handles_labels()
            styles, names = split_handles()
            legend_below(ax, handles + styles, labels + names)
        footer = provenance_text([n for n in nets if n.net in drawn], commit)  # ResNet-110 is in two panels: once
        title = "Figure 6: training on CIFAR-10 (dashed: training error, bold: test error)"
        paths = finish(fig, title, footer, out, "figure6")
    return paths, skipped, [n for n in nets if n.net in drawn]
