"""How a CPU sweep should share the machine: one run at a time with every thread, or runs side by side
with one thread each. Both ways run the same sweep (default: plain/ResNet x 20/56) through the real
command line, on the same data, into folders of their own, and the wall time of each is the result.

    python -m benchmarks.throughput.sweeps --data-root ../shared/data/cifar10-jpeg.tar.xz
    python -m benchmarks.throughput.sweeps --set steps=400 --out results/bench/sweeps-amd-epyc-f26m2-2c.md

    one at a time  python run.py -m <sweep>                                      (threads: torch's, one per core)
    side by side   python run.py -m <sweep> hydra/launcher=joblib hydra.launcher.n_jobs=<cores> trainer.threads=1

The runs are short (default 400 iterations, two evaluations) and eager (compile=auto stays eager
below 5000 steps): the wall time is the steady training and evaluation throughput of each way, plus
each run's start-up. Nothing is kept but the result file: the runs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from resnet_repro import machine
from resnet_repro.plan import job_overrides

from .render import default_out, taken

SWEEP = ["-m", "experiment=tenth", "report=false", "trainer.progress_bar=lines"]
NETS = "arch=plain,resnet depth=20,56"  # Figure 6's four nets
DEFAULT_SETTINGS = ["steps=400", "eval_every=200"]
RUN_PY = [sys.executable, "-m", "resnet_repro"]


def ways(cores: int) -> dict[str, list[str]]:
    """The two ways to run the sweep, as the overrides each adds."""
    return {
        "one at a time, all threads": [],
        f"side by side, {cores} jobs x 1 thread": [
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={cores}",
            "trainer.threads=1",
        ],
    }


def timed_sweep(overrides: list[str], out_dir: Path, log: Path) -> float:
    """Seconds the sweep took, end to end (a failed sweep is an error: its time would mean nothing)."""
    start = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run([*RUN_PY, *SWEEP, f"out_dir={out_dir}", *overrides], stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        last = log.read_text().strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"the sweep {' '.join(overrides)} exited {done.returncode}: {last[0]}")
    return time.perf_counter() - start


def merged(overrides: list[str]) -> list[str]:
    """The overrides with one value per key, the last given winning (Hydra refuses a key given twice)."""
    return [f"{k}={v}" for k, v in dict(o.split("=", 1) for o in overrides).items()]


def count_runs(overrides: list[str]) -> int:
    """The runs `python run.py -m <SWEEP> <overrides>` launches, as Hydra's sweeper expands them (plan.py)."""
    return len(job_overrides([*SWEEP[1:], *overrides], multirun=True)[0])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput.sweeps", description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="CIFAR-10 for the runs (data.root)")
    p.add_argument("--nets", default=NETS, help=f"the sweep's nets (default: {NETS})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more overrides, both ways")
    p.add_argument("--out", help="Markdown result (must not exist); default results/bench/sweeps-<cpu>.md")
    args = p.parse_args(argv)
    cpu, cores = machine.read_cpu(), machine.usable_cores()
    out = Path(args.out) if args.out else default_out(cpu, cores, None, prefix="sweeps-")
    if taken(out):
        p.error(f"--out {out} exists; name another file")
    settings = merged([*args.nets.split(), f"data.root={args.data_root}", *DEFAULT_SETTINGS, *args.set])
    lines = [
        "# A CPU sweep: one run at a time, or side by side",
        "",
        f"- cpu: {cpu.describe()}; SIMD: {' '.join(cpu.simd)}; cores: {cores}",
        f"- sweep: python -m resnet_repro {' '.join([*SWEEP, *settings])}",
        f"- load average before: {machine.load_average()}",
        "",
        "| way | overrides | wall time | runs per hour |",
        "|---|---|---:|---:|",
    ]
    times, runs = {}, count_runs(settings)
    with tempfile.TemporaryDirectory(prefix="resnet-sweeps-") as tmp:
        for i, (way, overrides) in enumerate(ways(cores).items()):
            seconds = timed_sweep([*settings, *overrides], Path(tmp) / f"way{i}", Path(tmp) / f"way{i}.log")
            times[way] = seconds
            print(f"{way}: {seconds:.0f} s (load {machine.load_average()})", flush=True)
            lines.append(f"| {way} | {' '.join(overrides) or '-'} | {seconds:.0f} s | {runs * 3600 / seconds:.1f} |")
    (serial, serial_s), (parallel, parallel_s) = times.items()
    lines += ["", f"{parallel} / {serial}: {serial_s / parallel_s:.2f}x the runs per hour."]
    lines += [f"- load average after: {machine.load_average()}"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines) + f"\nwrote {out}")


if __name__ == "__main__":
    from resnet_repro.threads import use_project_thread_env

    use_project_thread_env()  # for the runs: inherited through the environment
    main()
