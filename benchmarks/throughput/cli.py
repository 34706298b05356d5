"""`python -m benchmarks.throughput`: the command line, and the run of every path in rotation.

Before any timing it counts each depth's FLOPs and measures the ceilings (a matmul and a convolution per arithmetic).
For each depth it builds the paths (a), (b), every reference setting (c) and the variants of (a),
measures them in turn `repeats` times, each repeat in a rotated order, then profiles a few steps
of (b); at the end it writes the result.
Every flag is checked (and the output name refused if taken) before any work starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import torch

from resnet_repro import machine
from resnet_repro.allocator import keep_freed_memory
from resnet_repro.config import ConfigError, RunSpec
from resnet_repro.data import Split
from resnet_repro.trained_with import code_commit

from .ceiling import ARITHMETIC, measure_ceiling
from .flops import count_flops
from .harness import (
    BareLoop,
    ProjectPath,
    process_wide_change,
    project_process,
    resolved_device,
    rotation,
    run_spec,
    training_split,
)
from .paths import BARE_LOOP, PROJECT, variant_path
from .profile import StepProfile, profile_steps
from .reference import reference_process, write_batches
from .render import Row, Work, default_out, render, taken, write_csv

DESCRIPTION = (
    "Training throughput, three ways, in one run on one machine: (a) the project through Lightning, "
    "(b) the same module in a bare loop, (c) a public reproduction's loop."
)


def net_overrides(depth: int, common: list[str], variant: str = "") -> list[str]:
    """The overrides of the ResNet of `depth` the benchmark times: --set's, then a variant's (--also)."""
    return [f"depth={depth}", "arch=resnet", *common, *filter(None, variant.split(","))]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=DESCRIPTION)
    p.add_argument("--data-root", help="CIFAR-10 in any layout data.py reads; default: generated images")
    p.add_argument("--depths", default="20,56", help="ResNet depths (default 20,56)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before each measurement (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="measurements of each path, interleaved (default 3)")
    p.add_argument(
        "--ref-workers",
        default="2,4",
        help="DataLoader workers of the reference, a list; a/c divides by the fastest "
        "(default 2,4: akamaster's default is 4, and 2 can be faster on 2 cores)",
    )
    p.add_argument(
        "--ref-env",
        default="default",
        help="thread environment of the reference: default (as a public script runs: torch's OpenMP defaults), "
        "project (the project's GOMP_SPINCOUNT), or both: default,project",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for (a) and (b), e.g. --set trainer.compile=true",
    )
    p.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="also time the project path with these overrides, in the same rotation "
        "(e.g. --also trainer.compile=true); reported relative to (a)",
    )
    p.add_argument(
        "--profile",
        type=int,
        default=10,
        metavar="STEPS",
        help="profile this many steps of the bare loop (b) per depth after the timings, on a CPU, and write where "
        "the time goes (default 10; 0: no profile)",
    )
    p.add_argument(
        "--out",
        help="markdown file, which must not exist yet (a .csv of every measurement is written beside it); "
        "default results/bench/<cpu>-f<family>m<model>-<cores>c[-<gpu>].md, dated if that one exists",
    )
    return p


def settings(args: argparse.Namespace, base: RunSpec, split: Split, argv: list[str]) -> dict[str, str]:
    """What was measured and how, as the result states it (after the machine)."""
    t = base.trainer
    data = f"{split.source}, {len(split.train_labels)} training images"
    compiled = f"{'compiled' if t.compiled else 'eager'} for a run of {base.steps} steps"
    project = (
        f"channels_last={t.channels_last}, compile={base.config['trainer']['compile']} ({compiled}), "
        f"threads={t.threads or 'torch default'}, keep_freed_memory={t.keep_freed_memory} (process-wide: "
        f"a variant that changes it runs in a process of its own), precision={t.precision}, batch {base.batch_size}, "
        f"progress bar={t.progress_bar}"
    )
    reference = (
        "torchvision CIFAR10 (read from a generated cifar-10-batches-py of the same images) + PIL transforms, "
        f"DataLoader workers {args.ref_workers}, eager NCHW fp32, each in a process of its own, "
        f"thread environment: {args.ref_env} "
        "(default: as the user's environment has it, without the project's GOMP_SPINCOUNT)"
    )
    omp = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ]
    return {
        "data": data + (f" ({args.data_root})" if args.data_root else ""),
        "project path (a, b)": project,
        "reference (c)": reference,
        "variants of (a)": "; ".join(args.also) or "none",
        "thread environment": ", ".join(omp) or "OMP_* unset (torch's defaults)",
        "timing": f"{args.warmup} warm-up + {args.steps} timed steps per measurement, "
        f"{args.repeats} repeats interleaved",
        "command": "python -m benchmarks.throughput " + " ".join(argv),
        "code": code_commit(),
    }


def timed(harnesses: list, depth: int, repeats: int, warmup: int, steps: int) -> list[Row]:
    """Each harness measured `repeats` times, in turn, each repeat in a rotated order; printed as it goes."""
    rows = []
    for repeat in range(repeats):
        for harness in rotation(harnesses, repeat):
            row = Row(depth, harness.path, repeat, harness.measure(warmup, steps), machine.load_average())
            value = f"{row.images_per_s:.1f} img/s (load {row.load})"
            print(f"ResNet-{depth} repeat {repeat}: {row.path.label}: {value}", flush=True)
            rows.append(row)
    return rows


def counted_work(
    depths: list[int],
    specs: dict[int, RunSpec],
    variants: dict[tuple[int, str], RunSpec],
    also: list[str],
    device: torch.device,
    threads: int | None,
) -> Work:
    """FLOPs per image of each depth (counted) and the ceilings of the arithmetic of every path (measured)."""
    arithmetic = {p: ARITHMETIC[specs[depths[0]].trainer.precision] for p in (PROJECT, BARE_LOOP)}
    arithmetic |= {variant_path(a): ARITHMETIC[variants[depths[0], a].trainer.precision] for a in also}
    ceilings = {kind: measure_ceiling(kind, device, threads) for kind in {"fp32", *arithmetic.values()}}
    return Work({d: count_flops(d) for d in depths}, arithmetic, ceilings)


def work_settings(work: Work) -> dict[str, str]:
    """The FLOPs and the ceilings, as the result states them (the references compute in fp32)."""
    stated = {"FLOPs per image": "; ".join(f.describe() for f in work.flops.values()) + " (FlopCounterMode)"}
    for kind, ceiling in sorted(work.ceilings.items()):
        stated[f"nominal peak, {kind}"] = ceiling.nominal.how
        stated[f"measured ceiling, {kind}"] = f"{ceiling.how} (load {machine.load_average()})"
    return stated


def main(argv: list[str] | None = None) -> str:
    cli = parser()
    args = cli.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1 or args.profile < 0:
        cli.error("--warmup, --steps and --repeats must be at least 1, --profile at least 0")
    if args.out and taken(Path(args.out)):
        cli.error(f"--out {args.out} (or its .csv) exists; name another file, or move that one away first")
    try:
        depths = [int(d) for d in args.depths.split(",")]
        workers = [int(w) for w in args.ref_workers.split(",")]
    except ValueError:
        cli.error("--depths and --ref-workers take whole numbers separated by commas, e.g. --depths 20,56")
    envs = args.ref_env.split(",")
    if not set(envs) <= {"default", "project"}:
        cli.error("--ref-env takes default, project or default,project")
    try:  # every run the benchmark builds, resolved before any work: a bad setting is one line, now
        base = run_spec(args.set)
        specs = {depth: run_spec(net_overrides(depth, args.set)) for depth in depths}
        variants = {
            (depth, also): run_spec(net_overrides(depth, args.set, also)) for depth in depths for also in args.also
        }
    except ConfigError as e:
        cli.error(f"--depths/--set/--also: {e}")

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if base.trainer.keep_freed_memory:  # process-wide: (a) and (b) alike from the start
        keep_freed_memory()
    split = training_split(args.data_root, base)
    info = machine.facts()
    described = settings(args, base, split, argv if argv is not None else sys.argv[1:])
    work = counted_work(depths, specs, variants, args.also, resolved_device(base), base.trainer.threads)
    described.update(work_settings(work))
    print("\n".join(f"{k}: {v}" for k, v in {**info, **described}.items()), flush=True)

    rows: list[Row] = []
    loads: list[str] = []
    profiles: dict[int, StepProfile] = {}
    with tempfile.TemporaryDirectory(prefix="resnet-bench-") as tmp:
        ref_root = write_batches(split.train_images, split.train_labels, Path(tmp) / "cifar10")
        lightning_dir = Path(tmp) / "lightning"
        for depth in depths:
            loads.append(machine.load_average())
            spec = specs[depth]
            project = ProjectPath(spec, split, lightning_dir)
            references = [
                reference_process(depth, ref_root, w, resolved_device(spec), spec.batch_size, env)
                for env in envs
                for w in workers
            ]
            bare = BareLoop(spec, split, project.module)
            harnesses, processes = [project, bare], list(references)
            for also in args.also:
                path, variant = variant_path(also), variants[depth, also]
                if process_wide_change(variant, base):  # cannot share this process: a process of its own
                    processes.append(project_process(net_overrides(depth, args.set, also), args.data_root, path))
                else:
                    harnesses.append(ProjectPath(variant, split, lightning_dir, path=path))
            harnesses += processes
            try:
                rows += timed(harnesses, depth, args.repeats, args.warmup, args.steps)
            finally:
                for process in processes:
                    process.close()
            if args.profile and bare.device.type == "cpu":  # after the timings: they run unprofiled
                profiles[depth] = profile_steps(bare, args.warmup, args.profile)
                print(f"ResNet-{depth}: profiled {profiles[depth].ms_per_step:.1f} ms per bare-loop step", flush=True)
    loads.append(machine.load_average())

    table = render(rows, info, described, loads, work, profiles)
    print("\n" + table)
    cpu = machine.read_cpu()  # the file is named at the end: no file is overwritten
    out = Path(args.out) if args.out else default_out(cpu, machine.usable_cores(), machine.gpu_name())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    write_csv(rows, out.with_suffix(".csv"), work)
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return table
