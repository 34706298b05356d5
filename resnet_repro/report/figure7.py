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
) -> tuple[pd.DataFrame, list[str]]:
    """Std of every 3x3 layer's response per finished run: columns net, arch, depth, shortcut, run, seed, layer, std."""
    rows, skipped = [], []
    for net in nets:
        if net.done.empty:
            skipped.append(f"Figure 7 {net.cli_name}: no finished run (needs a final checkpoint)")
            continue
        for run in net.done.to_dict("records"):
            if verbose:  # a forward pass over the test set per run: say what is taking the time
                print(f"  figure 7: {net.cli_name} seed {run['seed']} on {device}", flush=True)
            try:
                stds = run_response_stds(run, data_root, device, max_images)
            except Unavailable as e:
                skipped.append(f"Figure 7 {net.cli_name} seed {run['seed']}: {e}")
                continue
            rows += [
                {
                    "net": net.name,
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
    return pd.DataFrame(rows), skipped


def figure7(nets: list[NetRuns], stats: pd.DataFrame, out: Path, commit: str, n_images: str) -> list[Path]:
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
            notes = [f"{per_run.shape[1]} runs"] if per_run.shape[1] > 1 else []
            notes += [f"steps={net.steps}"] if mixed else []
            label = net.name + (f" ({'; '.join(notes)})" if notes else "")
            # plain nets dashed and on top, so a ResNet of the same depth cannot hide them
            zorder = 3 if net.arch == "plain" else 2
            for ax, values in ((top, ordered), (bottom, sorted_)):
                x = np.arange(1, len(values) + 1)
                ax.plot(
                    x, values.mean(1), color=colour(net), ls=ls, lw=1.8, label=label, marker="o", ms=2.5, zorder=zorder
                )
                if values.shape[1] > 1:
                    ax.fill_between(x, values.min(1), values.max(1), color=colour(net), alpha=0.15, lw=0)
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
