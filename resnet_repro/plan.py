"""The plan before the spend: what a `run.py` command would do, run by run, without training.

    python run.py -m experiment=quick data.root=... dry_run=true      # or: python -m resnet_repro.plan -m ...

For every run of the sweep (expanded as Hydra's sweeper expands it, presets' sweeps included): its
directory and state (new / resume at step s / done / diverged / running elsewhere / refused), device,
precision, compile, steps, and a time estimate from a few training steps measured on this machine's
device. Every run is resolved as a real run resolves it, so a bad setting fails here with the same
one-line error (exit 2), and nothing is written: no directory, no lock, no launcher.

The estimate times the eager step (the run's net, batch, precision and memory format, random
images) and adds the evaluations at a third of a training step per image; a compiled run is
usually faster, and its 1-3 minutes of compiling are not counted.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from dataclasses import dataclass

from .threads import use_project_thread_env

DRY_RUN_ARGS = ("dry_run=true", "+dry_run=true")
TEST_IMAGES = 10_000


@dataclass
class Planned:
    run_id: str
    run_dir: str
    state: str  # new | resume at step s | done | diverged | running elsewhere | refused: ... | invalid: ...
    start_step: int = 0
    spec: object = None  # the RunSpec, None if invalid
    estimate: float | None = None  # seconds, for a run that trains


def job_overrides(overrides: list[str], multirun: bool) -> tuple[list[list[str]], str]:
    """The task overrides of every job the command would launch, as Hydra's basic sweeper makes them
    (command-line sweeps and a preset's hydra.sweeper.params), and the launcher's name."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import CompactHydraException

    from .config import CONF_DIR, ConfigError, hydra_error_line

    try:
        parser = OverridesParser.create()
        parsed = parser.parse_overrides(overrides)
        is_hydra = [o.get_key_element().lstrip("+~").startswith("hydra") for o in parsed]
        task = [o.input_line for o, h in zip(parsed, is_hydra) if not h]
        base = [o.input_line for o in parsed if not o.is_sweep_override()]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=base if multirun else overrides, return_hydra_config=True)
        launcher = str(cfg.hydra.launcher._target_).rsplit(".", 1)[-1]
        if not multirun:
            return [task], launcher
        params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
        return BasicSweeper.split_arguments(parser.parse_overrides(params + task), None)[0], launcher
    except CompactHydraException as e:
        raise ConfigError(hydra_error_line(e)) from None


def plan_run(overrides: list[str], label: str = "") -> Planned:
    """One job, resolved as `run.py` resolves it, and the state of its directory, read only. `label`
    names the job if it is invalid (it then has no directory): e.g. its swept overrides."""
    from filelock import FileLock, Timeout

    from .config import ConfigError, compose, resolve
    from .runs import ConfigMismatch, RunDir, RunFileError, status_text

    try:
        spec = resolve(compose(overrides))
    except ConfigError as e:
        return Planned(run_id=label or "the run", run_dir=label or "the run", state=f"invalid: {e}")
    run = RunDir(spec.run_dir)
    planned = Planned(run_id=spec.run_id, run_dir=str(spec.run_dir), state="new", spec=spec)
    try:
        run.check_config(spec.config)
        status = run.status()
        state = status.get("state")
        if state in ("done", "diverged"):
            planned.state = state
        elif run.path.is_dir() and run.check_resume(spec.steps, spec.log_every):
            planned.start_step = run.check_checkpoint(spec.steps)
            # how it was left: "stopped at step s by SIGINT", "killed at step s (...)", "failed at step s (...)"
            planned.state = f"resume at step {planned.start_step}" + (f" ({status_text(status)})" if state else "")
        if run.lock_file.is_file() and planned.state not in ("done", "diverged"):
            lock = FileLock(str(run.lock_file))
            try:
                lock.acquire(timeout=0)
                lock.release()
            except Timeout:
                planned.state = "running elsewhere (skipped)"
    except (ConfigMismatch, RunFileError) as e:
        planned.state = f"refused: {e}"
    if planned.state == "new" or planned.state.startswith("resume"):
        refusal = data_refusal(str(spec.data.root), spec.data.subset)
        if refusal:
            planned.state = f"refused: {refusal}"
    return planned


@functools.cache
def data_refusal(root: str, subset: str | None) -> str | None:
    """What training would refuse in the data (the classes and the images per class, found without decoding an
    image), once per data root: None where there is nothing to say."""
    from .data import DataError, survey

    try:
        survey(root, subset)
    except DataError as e:
        return str(e)
    return None


def measure_step(spec, steps_at_least: int = 3, seconds: float = 2.0) -> float:
    """Seconds per eager training step of this run's net on this machine's device (random images)."""
    import torch
    import torch.nn.functional as F

    from .devices import use_float32_precision

    t = spec.trainer
    device = torch.device("cuda", 0) if t.accelerator == "cuda" else torch.device(t.accelerator)
    use_float32_precision(t.precision)
    torch.backends.cudnn.benchmark = t.cudnn_benchmark
    threads = torch.get_num_threads()
    if t.threads:
        torch.set_num_threads(t.threads)
    layout = torch.channels_last if t.channels_last else torch.contiguous_format
    model = spec.net.build().to(device, memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(spec.batch_size, 3, 32, 32, device=device).to(memory_format=layout)
    labels = torch.randint(0, 10, (spec.batch_size,), device=device)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(t.precision)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    try:
        for _ in range(2):  # allocations, cuDNN's algorithm search, oneDNN's kernels for these shapes
            step()
        times, start = [], time.perf_counter()
        while len(times) < steps_at_least or time.perf_counter() - start < seconds and len(times) < 10:
            sync()
            began = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - began)
        return statistics.median(times)  # a step slowed by another process on the machine counts less
    finally:
        torch.set_num_threads(threads)


def estimate_s(spec, start_step: int, step_s: float) -> float:
    """Training from start_step to the end, and its evaluations (val + test at a third of a step per image)."""
    remaining = spec.steps - start_step
    evaluations = spec.steps // spec.eval_every - start_step // spec.eval_every + (spec.steps % spec.eval_every != 0)
    eval_images = spec.data.val_size + TEST_IMAGES
    return remaining * step_s + evaluations * eval_images / spec.batch_size * step_s / 3


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


HEADER = ("run directory", "state", "device", "precision", "compile", "steps", "estimate")


def _row(p: Planned) -> tuple[str, ...]:
    state = p.state if len(p.state) <= 60 else p.state[:57] + "..."  # an error in full is printed below the table
    if p.spec is None:
        return (p.run_dir, state, "", "", "", "", "")
    t = p.spec.trainer
    compile = {"false": "eager", "true": "default"}.get(t.compile, t.compile)  # a mode: reduce-overhead...
    estimate = "-" if p.estimate is None else f"~{duration(p.estimate)}"
    return (p.run_dir, state, t.accelerator, t.precision, compile, str(p.spec.steps), estimate)


def _trains(p: Planned) -> bool:
    return p.spec is not None and (p.state == "new" or p.state.startswith("resume"))


# Of a GPU's memory, what a run may count on: the CUDA context, cuDNN's workspace and the allocator's
# slack take the rest (a rule of thumb, not a measurement).
USABLE_GPU_MEMORY = 0.9


def gpu_memory_warnings(planned: list[Planned]) -> dict[tuple, str]:
    """Per (net, batch) of the CUDA runs that would not fit the smallest visible GPU: a one-line warning
    (the runs are still planned: the count is an estimate). Memory per run: the activations a step saves
    for backward (costs.saved_for_backward, fp32) and its weights, gradients and momentum (12 bytes per
    parameter); runs_per_gpu runs share a GPU."""
    import torch

    from .costs import saved_for_backward

    cuda = [p for p in planned if p.spec.trainer.accelerator == "cuda"]
    if not cuda or not torch.cuda.device_count():
        return {}
    gpus = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    smallest = min(gpus, key=lambda g: g.total_memory)
    warnings = {}
    settings = {(p.spec.net, p.spec.batch_size, p.spec.trainer.runs_per_gpu) for p in cuda}
    for net, batch, runs in sorted(settings, key=lambda s: (s[0].depth, s[0].cli_name, s[1], s[2])):
        need = saved_for_backward(net, batch) + 12 * net.parameters
        if need * runs > USABLE_GPU_MEMORY * smallest.total_memory:
            shared = f" and {runs} runs share a GPU (trainer.runs_per_gpu={runs})" if runs > 1 else ""
            fix = "trainer.runs_per_gpu=1, or a GPU with more memory" if runs > 1 else "a GPU with more memory"
            warnings[(net, batch)] = (
                f"warning: {net.cli_name} at batch_size={batch} needs about {need / 2**30:.1f} GiB of GPU memory "
                f"(activations saved for backward, counted in fp32, plus weights, gradients, momentum){shared}; the smallest GPU here "
                f"({smallest.name}) has {smallest.total_memory / 2**30:.1f} GiB, so it would run out at its first "
                f"step (not timed here): use {fix}"
            )
    return warnings


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def plan(args: list[str], measure: bool = True, say=print) -> int:
    """Print the plan of the `run.py` command with these arguments; its exit status (2: a bad setting)."""
    from .config import ConfigError

    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun", *DRY_RUN_ARGS)]
    try:
        jobs, launcher = job_overrides(overrides, multirun)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    swept = [o for o in {o for job in jobs for o in job} if sum(o in job for job in jobs) < len(jobs)]
    planned = [plan_run(job, " ".join(o for o in job if o in swept)) for job in jobs]
    invalid = [p for p in planned if p.spec is None]
    if invalid and not multirun:
        print(f"error: {invalid[0].state.removeprefix('invalid: ')}", file=sys.stderr)
        return 2
    too_big = gpu_memory_warnings([p for p in planned if _trains(p)])
    for line in too_big.values():
        print(line, file=sys.stderr)
    timed: dict[tuple, float] = {}  # seconds per step, per net and setting: seeds share one measurement
    for p in planned:
        if _trains(p) and (p.spec.net, p.spec.batch_size) not in too_big:  # timing it would run out of memory
            t = p.spec.trainer
            key = (p.spec.net, p.spec.batch_size, t.accelerator, t.precision, t.channels_last, t.threads)
            if measure and key not in timed:
                timed[key] = measure_step(p.spec)
            p.estimate = estimate_s(p.spec, p.start_step, timed[key]) if key in timed else None
    say(f"plan: {len(planned)} run{'s' * (len(planned) != 1)}, launcher {launcher}; nothing is trained or written")
    if launcher != "BasicLauncher":
        say("  settings resolve where each job runs; device, precision and estimates below are this machine's")
    say(table([HEADER, *(_row(p) for p in planned)]))
    if timed:
        total = duration(sum(p.estimate or 0 for p in planned))
        nets = f"{len(timed)} net{'s' * (len(timed) != 1)}"
        say(f"total: ~{total} one run after another (eager steps timed here, {nets}; compiling not counted)")
    for p in invalid:
        print(f"error: {p.run_id}: {p.state.removeprefix('invalid: ')}", file=sys.stderr)
    refused = [p for p in planned if p.state.startswith("refused")]
    by_reason: dict[str, list[str]] = {}  # one line per reason: bad data refuses every run alike
    for p in refused:
        by_reason.setdefault(p.state.removeprefix("refused: "), []).append(p.run_id)
    for reason, runs in by_reason.items():
        print(f"error: {runs[0] if len(runs) == 1 else f'{len(runs)} runs'}: {reason}", file=sys.stderr)
    return 2 if invalid or refused else 0


PLAN_HELP = [
    "The plan of `python run.py` with the same arguments (the same as adding dry_run=true there): every run's",
    "directory and state (new / resume at step s / done / refused ...), device, precision, compile, steps and a",
    "time estimate from a few steps timed here. Nothing is trained or written; a bad setting is refused as the",
    "run would refuse it (one line, exit 2).",
    "  python -m resnet_repro.plan -m experiment=quick data.root=../shared/data/cifar10-jpeg.tar.xz",
]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        from .cli import help_text

        print(help_text("python -m resnet_repro.plan", PLAN_HELP))
        sys.exit(0)
    sys.exit(plan(args))


if __name__ == "__main__":
    use_project_thread_env()  # before torch is imported (by config, in plan): as a run would
    main()
