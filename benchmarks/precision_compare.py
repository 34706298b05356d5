"""bf16-mixed against fp32: one net, the same seeds and schedule, trained once in each precision.

`trainer.precision=auto` trains in bf16-mixed where the hardware computes bf16 natively (README, deviations); the
paper trained in fp32. This puts the two side by side, seed by seed (the same seed gives both the same initial
weights and the same batches), and judges the difference as the claims table judges a claim: beyond twice its
noise, or within it.

    python -m benchmarks.precision_compare --fp32 results/tenth/runs --bf16 results/precision/tenth/runs \\
        --net resnet-20 --data-root ../shared/data/cifar10-jpeg.tar.xz --out results/precision/tenth

(from the checkout's root.)

Writes into --out (refused if it holds a comparison already): comparison.md (the table, the noise, the verdicts),
comparison.csv (per seed and precision), comparison.png (both precisions' curves, mean over seeds and their range).
The noise of a difference of means: the seed part from the per-seed differences (paired by seed), with the sampling
part: for test error, the test set paired by image (each run's final-weights predictions, cached beside the run);
for training error, the standard error of each last-quarter mean.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from resnet_repro.analysis import Unavailable, run_test_predictions
from resnet_repro.report import claims
from resnet_repro.results import load_results

PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}
# The claims table's verdicts, said of bf16 minus fp32: the same rule (beyond twice the noise, or within it).
VERDICTS = {
    claims.HOLDS: "bf16 higher, beyond noise",
    claims.FAILS: "bf16 lower, beyond noise",
    claims.WITHIN_NOISE: "within noise",
}


class Refused(Exception):
    """Bad input: one line that names the fix."""


def finished_runs(root: Path, net: str, precision: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) of `net`'s finished runs under `root`, each trained in `precision` alone."""
    if not root.is_dir():
        raise Refused(f"no folder {root}; pass the runs of one precision (e.g. results/tenth/runs)")
    results = load_results(root)
    runs = results.runs[(results.runs.net == net) & (results.runs.status == "done")]
    if runs.empty:
        raise Refused(f"no finished {net} run under {root}; name a net it has (--net, e.g. resnet-20)")
    if not set(runs.shortcut) <= set(claims.PAPERS_SHORTCUTS):
        raise Refused(f"{net} is not one of the paper's nets (plain, option-A ResNet); name one (--net resnet-20)")
    for run in runs.itertuples():
        used = {e.get("precision") for e in run.environments}
        if used != {precision}:
            raise Refused(
                f"{run.path} trained in {', '.join(map(str, used))}, not {precision}; pass runs of one precision"
            )
    curves = results.curves[results.curves.run.isin(runs.run)]
    return runs.set_index("seed"), curves


def per_seed(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per seed: the final test error and the last-quarter mean training error (%), and that mean's variance."""
    net = runs.iloc[0]
    arch, depth = net["arch"], int(net["depth"])
    frame = pd.DataFrame(
        {
            "final_test": claims.per_seed(curves, arch, depth, "test", "final"),
            "late_train": claims.per_seed(curves, arch, depth, "train", "late"),
            "late_train_var": claims.late_mean_variances(curves, arch, depth, "train"),
        }
    )
    return frame.loc[runs.index].astype(float)


def wrong_by_image(runs: pd.DataFrame, seeds: list[int], data_root: str | None):
    """Per test image, the fraction of these seeds' runs that classify it wrongly (their final weights)."""
    return claims.wrong_by_image([run_test_predictions(runs.loc[s].to_dict() | {"seed": s}, data_root) for s in seeds])


def display(net: str) -> str:
    """The net as the paper writes it: resnet-20 -> ResNet-20."""
    return net.replace("resnet", "ResNet", 1)


def compare(args) -> tuple[pd.DataFrame, list[dict], dict, list[int]]:
    sets = {name: finished_runs(Path(getattr(args, name)), args.net, p) for name, p in PRECISIONS.items()}
    steps = {name: set(runs.steps) for name, (runs, _) in sets.items()}
    if len(steps["fp32"] | steps["bf16"]) != 1:
        raise Refused(f"the runs' schedules differ ({steps}); compare runs of one length")
    seeds = sorted(set(sets["fp32"][0].index) & set(sets["bf16"][0].index))
    if len(seeds) < 2:
        raise Refused(f"{args.net}: seeds in both precisions: {seeds or 'none'}; train at least two seeds in each")
    values = {name: per_seed(curves, runs.loc[seeds]) for name, (runs, curves) in sets.items()}
    table = pd.concat(values, names=["precision", "seed"]).reset_index()
    rows = []
    for statistic, what in (("final_test", "test error at the end"), ("late_train", "training error, last quarter")):
        differences = values["bf16"][statistic] - values["fp32"][statistic]
        margin = float(differences.mean())
        seed_noise = float(differences.std(ddof=1) / math.sqrt(len(seeds)))
        if statistic == "final_test":
            try:
                wrong = [wrong_by_image(sets[name][0], seeds, args.data_root) for name in ("bf16", "fp32")]
                sampling, sampling_words = claims.paired_by_image(*wrong)
            except Unavailable as e:
                raise Refused(f"no test predictions ({e}); pass --data-root <the runs' CIFAR-10>") from None
        else:
            sampling = claims.late_sampling(*(v.late_train_var for v in values.values()))
            sampling_words = "standard error of each last-quarter mean"
        noise = math.hypot(seed_noise, sampling)
        rows.append(
            {
                "statistic": what,
                "fp32": float(values["fp32"][statistic].mean()),
                "bf16": float(values["bf16"][statistic].mean()),
                "margin": margin,
                "noise": noise,
                "noise_basis": f"seed {seed_noise:.2f} (per-seed differences, {len(seeds)} seeds) with sampling "
                f"{sampling:.2f} ({sampling_words})",
                "verdict": VERDICTS[claims.judge(margin, noise)],
            }
        )
    return table, rows, sets, seeds


def figure(sets: dict, seeds: list[int], net: str, out: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.6), dpi=150)
    axes = fig.subplots(1, 2)
    colours = {"fp32": "#222222", "bf16": "#e69f00"}
    for ax, split, title in ((axes[0], "train", "training error"), (axes[1], "test", "test error")):
        for name, (runs, curves) in sets.items():
            rows = curves[(curves.split == split) & curves.run.isin(runs.loc[seeds].run)]
            table = rows.pivot_table(index="step", columns="run", values="error") * 100
            ax.plot(table.index, table.mean(axis=1), color=colours[name], lw=1.6, label=f"{name} ({PRECISIONS[name]})")
            ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=colours[name], alpha=0.18, lw=0)
        ax.set_title(f"{title} (mean of seeds {', '.join(map(str, seeds))}; band: their range)", fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel("error (%)")
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    fig.suptitle(f"{display(net)}: fp32 vs bf16-mixed, the same seeds and schedule", fontweight="bold")
    fig.tight_layout()
    fig.savefig(out / "comparison.png")


def markdown(table: pd.DataFrame, rows: list[dict], sets: dict, seeds: list[int], args) -> str:
    lines = [
        f"# {display(args.net)}: fp32 vs bf16-mixed",
        "",
        f"Made by `python -m benchmarks.precision_compare {' '.join(args.argv)}`.",
        "",
        f"fp32 runs: `{args.fp32}`; bf16-mixed runs: `{args.bf16}`; seeds {', '.join(map(str, seeds))} in each "
        f"(a seed gives both precisions the same initial weights and batches); "
        f"{int(next(iter(sets.values()))[0].steps.iloc[0]):,} iterations.",
        "",
        "| seed | fp32 final test | bf16 final test | fp32 train, last quarter | bf16 train, last quarter |",
        "|---:|---:|---:|---:|---:|",
    ]
    wide = table.pivot(index="seed", columns="precision")
    for seed in seeds:
        lines.append(
            f"| {seed} | {wide.loc[seed, ('final_test', 'fp32')]:.2f}% | {wide.loc[seed, ('final_test', 'bf16')]:.2f}% "
            f"| {wide.loc[seed, ('late_train', 'fp32')]:.2f}% | {wide.loc[seed, ('late_train', 'bf16')]:.2f}% |"
        )
    lines += [
        "",
        "| statistic | fp32 (mean) | bf16 (mean) | bf16 - fp32 | noise (what it is) | verdict |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['statistic']} | {r['fp32']:.2f}% | {r['bf16']:.2f}% | {r['margin']:+.2f} | {r['noise']:.2f}: "
            f"{r['noise_basis']} | **{r['verdict']}** |"
        )
    lines += ["", "Trained with:", ""]
    for name, (runs, _) in sets.items():
        for seed in seeds:
            lines.append(f"- {name} seed {seed}: {runs.loc[seed, 'trained_with']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fp32", required=True, help="runs trained in fp32 (32-true)")
    parser.add_argument("--bf16", required=True, help="runs of the same net and seeds trained in bf16-mixed")
    parser.add_argument("--net", default="resnet-20", help="the net to compare, as run.py names it (resnet-20)")
    parser.add_argument("--data-root", help="the runs' CIFAR-10, for the test predictions (default: their config's)")
    parser.add_argument("--out", required=True, help="a folder for comparison.md/.csv/.png (not one that has them)")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    out = Path(args.out)
    try:
        if (out / "comparison.md").exists():
            raise Refused(f"{out / 'comparison.md'} exists; pass another --out (a result is never overwritten)")
        table, rows, sets, seeds = compare(args)
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv", index=False)
    text = markdown(table, rows, sets, seeds, args)
    (out / "comparison.md").write_text(text)
    figure(sets, seeds, args.net, out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
