"""Figure 7: the std of every 3x3 layer's response on the test images, in layer order and sorted.

Its numbers come from each finished run's final weights (`analysis.run_response_stds`, a forward
pass over the test set per run); the figure and figure7.csv are drawn and written from them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..analysis import Unavailable, run_response_stds
from .nets import NetRuns
from .provenance import provenance_text
from .style import STYLE, colour, finish, new_figure


def figure7_stats(
    nets: list[NetRuns], data_root, device: str, max_images: int | None, verbose: bool
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Std of every 3x3 layer's response per finished run: columns net, arch, depth, shortcut, run, seed, layer,
    std. Also a line per net without a finished run (skipped) and per finished run whose numbers could not be
    computed, with the fix (left out). Each run's numbers are cached in its folder (analysis.CACHE_FILE)."""
    rows, skipped, left_out = [], [], []
    for net in nets:
        if net.done.empty:
            skipped.append(f"Figure 7 {net.cli_name}: no finished run (needs a final checkpoint)")
            continue
        for run in net.done.to_dict("records"):
            # a forward pass over the test set per run, unless cached: say what is taking the time
            line = f"  figure 7: {net.cli_name} seed {run['seed']} on {device}"
            announce = (lambda line=line: print(line, flush=True)) if verbose else None
            try:
                stds = run_response_stds(run, data_root, device, max_images, announce=announce)
            except Unavailable as e:
                left_out.append(f"Figure 7 {net.cli_name} seed {run['seed']} ({run['run']}): {e}")
                continue
            rows += [
                {
                    "net": net.display_name,
                    "arch": net.arch,
                    "depth": net.depth,
                    "shortcut": net.shortcut,
                    "run": run["run"],
                    "seed": run["seed"],
                    "layer": i,
                    "std": s,
                }
                for i, s in enumerate(stds, start=1)
            ]
    return pd.DataFrame(rows), skipped, left_out


LOG_SPAN = 10  # a panel whose values span more than this factor gets a log y axis: small stds stay readable


def net_style(net: NetRuns) -> dict:
    """The net's own colour (as in every figure); markers tell plain (open squares) from ResNets (filled circles)
    too. Solid lines: in every figure a dashed line means training error, and these are responses on the test set."""
    marker = {"none": "s", "A": "o"}.get(net.shortcut, "^")
    face = "white" if net.arch == "plain" else colour(net)
    return {"ls": "-", "lw": 1.5, "marker": marker, "ms": 4.5, "mfc": face, "mew": 1.2}


def figure7(nets: list[NetRuns], stats: pd.DataFrame, out: Path, commit: str, n_images: str) -> list[Path]:
    """Std of layer responses, in layer order (top) and sorted by magnitude (bottom)."""
    shown = [n for n in nets if not stats.empty and (stats.net == n.display_name).any()]
    mixed = len({n.steps for n in shown}) > 1
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("figure7", 2, 1)
        top, bottom = axes[0][0], axes[1][0]
        for net in shown:
            per_run = stats[stats.net == net.display_name].pivot_table(index="layer", columns="run", values="std")
            ordered = per_run.to_numpy()
            sorted_ = -np.sort(-ordered, axis=0)  # each run sorted on its own, then averaged
            notes = [f"{per_run.shape[1]} runs"] if per_run.shape[1] > 1 else []
            notes += [f"steps={net.steps}"] if mixed else []
            label = net.display_name + (f" ({'; '.join(notes)})" if notes else "")
            # plain nets on top, so that a ResNet of the same depth cannot hide them
            zorder = 3 if net.arch == "plain" else 2
            for ax, values in ((top, ordered), (bottom, sorted_)):
                x = np.arange(1, len(values) + 1)
                ax.plot(x, values.mean(1), color=colour(net), label=label, zorder=zorder, **net_style(net))
                if values.shape[1] > 1:
                    ax.fill_between(x, values.min(1), values.max(1), color=colour(net), alpha=0.15, lw=0)
        for ax, title in ((top, "in layer order"), (bottom, "sorted by magnitude")):
            ax.set_xlabel("layer index")
            ax.set_xlim(left=0)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            values = np.concatenate([line.get_ydata() for line in ax.lines]) if ax.lines else np.array([1.0])
            if values.min() > 0 and values.max() / values.min() > LOG_SPAN:
                ax.set_yscale("log")
                ax.set_ylabel("std (log scale)")
                ax.set_title(f"{title} (log scale: the stds span {values.max() / values.min():.0f}x)")
            else:
                ax.set_ylim(bottom=0)
                ax.set_ylabel("std")
                ax.set_title(title)
        # beside the axes, never over the points; the markers say plain (open squares) or ResNet (filled)
        top.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, handlelength=3)
        footer = provenance_text(shown, commit) + f"\nresponses after BN, before ReLU/addition; {n_images}"
        title = f"Figure 7: std of each 3x3 layer's response on CIFAR-10 test images: {', '.join(n.display_name for n in shown)}"
        return finish(fig, title, footer, out, "figure7")
