"""The report's gradient-flow figures (one per depth: plain beside ResNet), the F(x)+x figure, and their claim.

Numbers: `resnet_repro.gradients` (loss-gradient norms at every checkpoint of a run) and
`resnet_repro.residuals` (||F(x)|| / ||x|| per block of a finished run). One run per net is measured
(its lowest seed): the figures show how gradients flow through a net, not a spread over seeds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.ticker import MaxNLocator

from ..analysis import Unavailable
from ..gradients import BATCHES, HEALTHY_FACTOR, LAYERS_AT_EACH_END, flow_ratio, run_gradient_norms
from ..residuals import IMAGES, run_residual_ratios
from .nets import NetRuns
from .provenance import provenance_text
from .style import FIGSIZE, STYLE, colour, finish, new_figure

FIGSIZE.setdefault("gradients", (12.0, 8.0))
FIGSIZE.setdefault("residuals", (10.0, 5.0))
FILES = ("gradients.csv", "residuals.png", "residuals.pdf", "residuals.csv")  # and gradients-<depth>.png/.pdf
HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"


def remove_stale(out: Path, keep: set[str] = frozenset()) -> list[Path]:
    """This module's files of an earlier report that this one did not write (`keep`), so none passes for this
    report's."""
    paths = [*out.glob("gradients-*.png"), *out.glob("gradients-*.pdf"), *(out / f for f in FILES)]
    return [p for p in paths if p.is_file() and p.name not in keep]


def _pairs(nets: list[NetRuns]) -> dict[int, tuple[NetRuns, NetRuns]]:
    """depth -> (plain, ResNet option A) of basic blocks, where both have a run with final weights."""
    papers = {(n.arch, n.depth): n for n in nets if n.shortcut in ("none", "A") and n.net.block == "basic"}
    return {
        d: (papers[("plain", d)], papers[("resnet", d)])
        for a, d in sorted(papers)
        if a == "plain"
        and ("resnet", d) in papers
        and not papers[("plain", d)].done.empty
        and not papers[("resnet", d)].done.empty
    }


def _first_run(net: NetRuns) -> dict:
    return net.done.sort_values("seed").iloc[0].to_dict()


def _as_measured(nets: list[NetRuns]) -> list[NetRuns]:
    """Each net with a finished run as its first finished run alone: these figures measure one run per net, and
    their footers, legends and provenance name that run (its seed, its code), not the net's other seeds."""
    out = []
    for net in nets:
        if not net.done.empty:
            run = _first_run(net)["run"]
            net = replace(net, runs=net.runs[net.runs.run == run], curves=net.curves[net.curves.run == run])
        out.append(net)
    return out


def gradient_stats(nets: list[NetRuns], data_root, verbose: bool) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Gradient norms at every checkpoint of one run per net of each plain/ResNet pair; skipped and left-out lines."""
    pairs = _pairs(nets)
    if not pairs:
        return pd.DataFrame(), ["Gradient flow: needs a finished plain and ResNet run of one depth"], []
    frames, left_out = [], []
    for pair in pairs.values():
        for net in pair:
            run = _first_run(net)
            if verbose:
                print(f"  gradients: {net.cli_name} seed {run['seed']}", flush=True)
            try:
                frames.append(run_gradient_norms(run, data_root).assign(seed=int(run["seed"])))
            except (Unavailable, OSError) as e:
                left_out.append(f"Gradient flow {net.cli_name} ({run['run']}): {e}")
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), [], left_out


def gradient_figures(norms: pd.DataFrame, nets: list[NetRuns], out: Path, commit: str) -> list[Path]:
    """Per depth: plain (left) and ResNet (right); weight gradients (top) and block-output gradients (bottom);
    one line per checkpoint, coloured from light (initialisation) to dark (the end); log y."""
    paths = []
    for depth, pair in _pairs(nets).items():
        of_depth = norms[norms.depth == depth]
        if of_depth.net.nunique() < 2:
            continue
        steps = sorted(of_depth.step.unique())
        shades = colormaps["viridis_r"](np.linspace(0.15, 1.0, len(steps)))
        with matplotlib.rc_context(STYLE):
            fig, axes = new_figure("gradients", 2, 2, sharey="row")
            for col, net in enumerate(pair):
                rows = of_depth[of_depth.arch == net.arch]
                for row, (kind, what) in enumerate(
                    (("weight", "||dL/dW|| of layer"), ("block", "||dL/dh|| of output"))
                ):
                    ax = axes[row][col]
                    for step, shade in zip(steps, shades):
                        f = rows[(rows.kind == kind) & (rows.step == step)].sort_values("index")
                        if not f.empty:
                            ax.plot(
                                f["index"], f["norm"], color=shade, lw=1.6, marker="o", ms=2.5, label=f"step {step}"
                            )
                    ax.set_yscale("log")
                    ax.set_title(f"{net.display_name}: {'each layer' if kind == 'weight' else 'stem and each block'}")
                    ax.set_xlabel("layer index" if kind == "weight" else "block index (0 = stem)")
                    ax.set_ylabel(what)
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes[0][1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, title="checkpoint")
            footer = provenance_text(list(pair), commit) + (
                f"\nloss-gradient norms in training mode, mean over the run's first {BATCHES} training "
                "batches; step 0 = the initialisation (from the seed, or a step-0 snapshot)"
            )
            title = f"Gradient flow at depth {depth}: plain-{depth} and ResNet-{depth}, at each checkpoint"
            paths += finish(fig, title, footer, out, f"gradients-{depth}")
    return paths


def gradient_claims(norms: pd.DataFrame) -> pd.DataFrame:
    """Per depth measured, the claim that a plain net's gradients do not vanish, with the ResNet's numbers beside."""
    rows = []
    if norms.empty:
        return pd.DataFrame(columns=["claim", "evidence", "verdict"])
    for depth in sorted(norms.depth.unique()):
        ratios = {
            arch: {
                int(s): flow_ratio(f) for s, f in norms[(norms.depth == depth) & (norms.arch == arch)].groupby("step")
            }
            for arch in ("plain", "resnet")
        }
        claim = (
            f"plain-{depth}'s gradients do not vanish: the gradient norm at its first layers is within a factor "
            f"{HEALTHY_FACTOR:g} of its last layers' (or larger)"
        )
        if not ratios["plain"]:
            rows.append({"claim": claim, "evidence": f"needs a plain-{depth} run", "verdict": NOT_MEASURED})
            continue

        def listing(arch, ratios=ratios, depth=depth):
            measured = norms[(norms.depth == depth) & (norms.arch == arch)]
            seeds = sorted(measured.seed.unique()) if "seed" in measured else []
            seeds = f" (one run, seed {', '.join(map(str, seeds))})" if seeds else ""
            return seeds + ": " + (", ".join(f"step {s}: {r:.3g}" for s, r in ratios[arch].items()) or "not measured")

        evidence = (
            f"first/last {LAYERS_AT_EACH_END} layers' mean weight-gradient norm; plain-{depth}{listing('plain')}; "
            f"ResNet-{depth}{listing('resnet')}. Vanishing = below 1/{HEALTHY_FACTOR:g}"
        )
        exploding = [s for s, r in ratios["plain"].items() if r > HEALTHY_FACTOR]
        if exploding:
            evidence += (
                f"; above {HEALTHY_FACTOR:g} (larger at the first layers) at step {', '.join(map(str, exploding))}"
            )
        lowest_step, lowest = min(ratios["plain"].items(), key=lambda item: item[1])
        factor = lowest * HEALTHY_FACTOR  # how far the lowest ratio is from the vanishing line, as a factor
        side = f"{factor:.1f}x above" if factor >= 1 else f"{1 / factor:.1f}x below"
        rows.append(
            {
                "claim": claim,
                "evidence": evidence,
                "margin": f"lowest {lowest:.3g} (step {lowest_step}): {side} 1/{HEALTHY_FACTOR:g}",
                "noise_basis": f"not measured: one run per net, its gradients over {BATCHES} training batches; the "
                "claim is about orders of magnitude (a factor 10), not a difference of points",
                "seeds": "one seed each: a claim made on one seed",
                "verdict": FAILS if factor < 1 else HOLDS,  # vanishing: below 1/HEALTHY_FACTOR at some step
            }
        )
    return pd.DataFrame(rows)


def residual_stats(nets: list[NetRuns], data_root, verbose: bool) -> tuple[pd.DataFrame, list[str], list[str]]:
    """||F(x)|| / ||x|| per block of one finished run per basic-block net (plain nets for contrast)."""
    frames, skipped, left_out = [], [], []
    for net in nets:
        if net.net.block != "basic" or net.shortcut not in ("none", "A"):
            continue
        if net.done.empty:
            skipped.append(f"F(x)+x {net.cli_name}: no finished run")
            continue
        run = _first_run(net)
        announce = (
            (lambda n=net, r=run: print(f"  F(x)+x: {n.cli_name} seed {r['seed']}", flush=True)) if verbose else None
        )
        try:
            frames.append(run_residual_ratios(run, data_root, announce=announce))
        except (Unavailable, OSError) as e:
            left_out.append(f"F(x)+x {net.cli_name} ({run['run']}): {e}")
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), skipped, left_out


def residual_figure(ratios: pd.DataFrame, nets: list[NetRuns], out: Path, commit: str) -> list[Path]:
    """Left: ResNets' ||F(x)|| / ||x|| per block; right: plain nets' block output against its input."""
    shown = [n for n in nets if (ratios.net == n.cli_name).any()]
    with matplotlib.rc_context(STYLE):
        fig, axes = new_figure("residuals", 1, 2)
        top = max(1.05, float(ratios.ratio.max()) * 1.05)  # one scale for both panels
        for ax, arch, title in (
            (axes[0][0], "resnet", "ResNets: ||F(x)|| / ||x||, the residual against its input"),
            (axes[0][1], "plain", "plain nets: ||block(x)|| / ||x|| (no shortcut; for contrast)"),
        ):
            for net in [n for n in shown if n.arch == arch]:
                f = ratios[ratios.net == net.cli_name]
                ax.plot(f["index"], f["ratio"], color=colour(net), lw=1.6, marker="o", ms=3.5, label=net.display_name)
            ax.axhline(1.0, color="0.6", lw=0.8)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("block index")
            ax.set_ylim(0, top)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.lines[1:]:
                ax.legend(frameon=False)
        axes[0][0].set_ylabel("ratio of norms (mean over images)")
        footer = provenance_text(shown, commit) + (
            f"\nfinal weights, eval mode, a fixed random {IMAGES} test images; x = what the shortcut carries "
            "(subsampled and zero-padded where the shape changes)"
        )
        return finish(fig, "F(x) + x in numbers: how large each block's residual is", footer, out, "residuals")


def write_gradients(report, nets: list[NetRuns], data_root, verbose: bool) -> pd.DataFrame:
    """The gradient-flow figures and gradients.csv into the report; returns the norms (empty if none)."""
    nets = _as_measured(nets)
    norms, skipped, left_out = gradient_stats(nets, data_root, verbose)
    report.skipped += skipped
    report.left_out += left_out
    if norms.empty:
        return norms
    csv = report.out_dir / "gradients.csv"
    norms.to_csv(csv, index=False)
    paths = gradient_figures(norms, nets, report.out_dir, report.commit)
    shown = [n for pair in _pairs(nets).values() for n in pair]
    report.record("gradients", [*paths, csv], shown, batches=BATCHES)
    return norms


def write_residuals(report, nets: list[NetRuns], data_root, verbose: bool) -> None:
    """The F(x)+x figure and residuals.csv into the report."""
    nets = _as_measured(nets)
    ratios, skipped, left_out = residual_stats(nets, data_root, verbose)
    report.skipped += skipped
    report.left_out += left_out
    if ratios.empty:
        report.skipped.append("F(x)+x: needs a finished run with its checkpoint and data")
        return
    csv = report.out_dir / "residuals.csv"
    ratios.to_csv(csv, index=False)
    paths = residual_figure(ratios, nets, report.out_dir, report.commit)
    report.record("residuals", [*paths, csv], [n for n in nets if (ratios.net == n.cli_name).any()], images=IMAGES)
