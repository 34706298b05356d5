"""Figure 1 and Figure 6: error curves over training, as the paper draws them.

Each returns the files it wrote, what it skipped (in one line each, with why) and the nets it drew.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.lines import Line2D

from .. import paper
from ..models import Net
from .nets import NetRuns
from .provenance import provenance_text
from .style import STYLE, TEST_LW, TRAIN_LW, draw, empty_panel, finish, legend_label, new_figure, steps_note, style_axes

FIGURE6_SIDES = ("left", "middle", "right")
TRAIN_DASHES = (0, (4, 2.5))


def figure1(nets: list[NetRuns], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[NetRuns]]:
    """Training (left) and test (right) error of plain-20 and plain-56."""
    by_net = {n.net: n for n in nets if len(n.usable)}
    wanted = [Net.of("plain", 20), Net.of("plain", 56)]
    shown = [by_net[k] for k in wanted if k in by_net]
    missing = [k.name for k in wanted if k not in by_net]
    if not shown:
        return [], ["Figure 1: needs plain-20 and plain-56"], []
    skipped = [f"Figure 1: no {' or '.join(missing)} (drawn without)"] if missing else []
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure1", 1, 2)
        note = steps_note(shown)
        mixed = len({n.steps for n in shown}) > 1
        for ax, split, title in zip(axes[0], ("train", "test"), ("training error", "test error")):
            lowest = [draw(ax, n, split, "-", TEST_LW, legend_label(n, "layers", steps=mixed)) for n in shown]
            style_axes(ax, shown, ymax, lowest)
            ax.set_title(title + (f"\n{note}" if note else ""))
            ax.legend(loc="best", frameon=True, framealpha=0.9)
        footer = provenance_text(shown, commit)
        paths = finish(fig, "Figure 1: plain-20 vs plain-56 on CIFAR-10", footer, out, "figure1")
    return paths, skipped, shown


def figure6(nets: list[NetRuns], out: Path, ymax: float, commit: str) -> tuple[list[Path], list[str], list[NetRuns]]:
    """Three panels: plain nets, ResNets, ResNet-110 vs 1202. Dashed = training error, bold = test error."""
    by_net = {n.net: n for n in nets if len(n.usable)}
    wanted = [[Net.of(arch, d) for d in depths] for _, arch, depths in paper.FIGURE6_PANELS]
    panels = [[by_net[k] for k in keys if k in by_net] for keys in wanted]
    drawn = {n.net for panel in panels for n in panel}
    skipped = []
    for side, keys, panel in zip(FIGURE6_SIDES, wanted, panels):
        missing = [k.name for k in keys if k not in by_net]
        if not panel:
            skipped.append(f"Figure 6 {side}: needs {' and '.join(missing)}")
        elif missing:
            skipped.append(f"Figure 6 {side}: no {', '.join(missing)} (drawn without)")
    left_out = [n.cli_name for n in nets if n.net not in drawn and len(n.usable)]
    if left_out:
        skipped.append(f"Figure 6: {', '.join(left_out)} not in the paper's panels (see Table 6, Figure 7)")
    if not drawn:
        return [], ["Figure 6: needs plain or ResNet runs of depth 20, 32, 44, 56, 110 or 1202"] + skipped[-1:], []
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure6", 1, 3)
        for ax, (title, _, _), keys, panel in zip(axes[0], paper.FIGURE6_PANELS, wanted, panels):
            if not panel:
                empty_panel(ax, "needs " + " and ".join(k.name for k in keys if k not in by_net))
                ax.set_ylim(0, ymax)
                ax.set_title(title)
                continue
            lowest, mixed = [], len({n.steps for n in panel}) > 1
            for n in panel:
                lowest.append(draw(ax, n, "train", TRAIN_DASHES, TRAIN_LW))
                lowest.append(draw(ax, n, "test", "-", TEST_LW, legend_label(n, steps=mixed)))
            style_axes(ax, panel, ymax, lowest)
            note = steps_note(panel)
            ax.set_title(title + (f"\n{note}" if note else ""))
            handles, labels = ax.get_legend_handles_labels()
            handles += [
                Line2D([], [], color="0.35", ls=TRAIN_DASHES, lw=TRAIN_LW),
                Line2D([], [], color="0.35", lw=TEST_LW),
            ]
            labels += ["training error (dashed)", "test error (bold)"]
            ax.legend(handles, labels, loc="best", frameon=True, framealpha=0.9)
        footer = provenance_text([n for panel in panels for n in panel], commit)
        title = "Figure 6: training on CIFAR-10 (dashed: training error, bold: test error)"
        paths = finish(fig, title, footer, out, "figure6")
    return paths, skipped, [n for n in nets if n.net in drawn]
