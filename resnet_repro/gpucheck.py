"""The GPU check: what a first GPU user needs to know works, measured on their GPU in under ten minutes.

    python -m resnet_repro.gpucheck                 # on a machine with a CUDA GPU
    python -m resnet_repro.gpucheck --device cpu --simulate   # the same code on the CPU, tiny: not a measurement

It runs, on the first visible GPU:
1. sweep: a 2-job joblib sweep with trainer.runs_per_gpu=2 on generated data; each job's process, the
   device it trained on, and the GPU slot it held (two slots of one GPU taken: both ran at once).
2. sync: 50 training steps through the run's own Trainer in bf16-mixed and 32-true, eager and compiled,
   under torch.cuda.set_sync_debug_mode("error"): any host-device sync in a step stops it, and says where.
3. tf32: under 32-true, the switches say TF32 is off, and an fp32 matmul and convolution agree with
   float64 to fp32's accuracy (TF32's 10-bit mantissa would miss by ~1e-3).
4. timing: ResNet-20 and ResNet-56 training steps (batch 128) and evaluation in each precision and
   compile mode, by its own loop (synchronised, after warm-up steps that include compiling); from them,
   a 64,000-iteration run and the Figure-6 sweep, extrapolated.
Then it writes results/gpu/<gpu>-<date>.json and .md, naming the GPU, driver, torch, CUDA, cuDNN and the
commit. An existing result file is never overwritten. Without CUDA it says so in one line and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pickle
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO_RESULTS = Path("results") / "gpu"
PRECISIONS = ("bf16-mixed", "32-true")
COMPILE_MODES = ("false", "true")
TIMED_DEPTHS = (20, 56)
# Figure 6 (paper): plain 20-56 and ResNet 20-110, one seed each.
FIGURE6 = [("plain", d) for d in (20, 32, 44, 56)] + [("resnet", d) for d in (20, 32, 44, 56, 110)]
FULL_RUN_STEPS = 64000
SYNC_STEPS = 50


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpucheck: torch {torch.__version__} finds no CUDA GPU here, so there is nothing to check; "
            "run it on a machine with one (or --device cpu --simulate to try the script itself)",
            file=sys.stderr,
        )
        return 1
    if args.device == "cpu" and not args.simulate:
        print("gpucheck: --device cpu measures nothing about a GPU; add --simulate to run the script's code on the CPU")
        return 2
    size = _Size.of(args)
    result = {"machine": machine(args.device), "simulated": args.simulate, "size": vars(size)}
    say = print
    say(f"gpucheck on {result['machine']['device_name']} ({'SIMULATED on the CPU' if args.simulate else 'CUDA'})")
    with tempfile.TemporaryDirectory(prefix="resnet-repro-gpucheck-") as work:
        work = Path(work)
        data = write_data(work / "data", size.images_per_class)
        result["sweep"] = check_sweep(args.device, data, work, size, say)
        result["sync"] = check_sync(args.device, size, say)
        result["tf32"] = check_tf32(args.device, say)
        result["timing"] = time_steps(args.device, size, say)
    result["extrapolated"] = extrapolate(result["timing"])
    ok = result["sweep"]["ok"] and all(r["ok"] for r in result["sync"]) and result["tf32"]["ok"]
    result["ok"] = ok
    json_path, md_path = write_result(result, Path(args.out))
    say(f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}; wrote {json_path} and {md_path}")
    return 0 if ok else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m resnet_repro.gpucheck", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--simulate", action="store_true", help="tiny sizes, for trying the script (a CPU has no GPU)")
    p.add_argument("--out", default=str(REPO_RESULTS), help="folder of the result files (default results/gpu)")
    p.add_argument("--compile", default=",".join(COMPILE_MODES), help="compile modes to check: false,true")
    p.add_argument("--timed-steps", type=int, default=None, help="timed steps per setting (default 100; 3 simulated)")
    return p


class _Size:
    """How much each part does: the real check, or a few steps of a tiny net when simulated."""

    def __init__(self, simulate: bool, compile_modes: list[str], timed_steps: int | None):
        self.compile_modes = compile_modes
        self.sync_steps = 4 if simulate else SYNC_STEPS
        self.sync_depth = 8 if simulate else 20
        self.depths = [8] if simulate else list(TIMED_DEPTHS)
        self.batch = 16 if simulate else 128
        self.warmup_steps = 2 if simulate else 20
        self.timed_steps = timed_steps or (3 if simulate else 100)
        self.eval_images = 64 if simulate else 10000
        self.sweep_steps = 4 if simulate else 200
        self.images_per_class = 12 if simulate else 100

    @classmethod
    def of(cls, args) -> _Size:
        modes = [m.strip() for m in args.compile.split(",") if m.strip()]
        if not modes or any(m not in COMPILE_MODES for m in modes):
            raise SystemExit(f"gpucheck: --compile={args.compile}: use false, true or false,true")
        return cls(args.simulate, modes, args.timed_steps)


# --------------------------------------------------------------------------- the machine


def machine(device: str) -> dict:
    from .machine import cpu_name
    from .trained_with import code_commit

    info = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "commit": code_commit(),
        "python": platform.python_version(),
        "cpu": cpu_name() or platform.processor() or "unknown",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            device_name=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            memory_gib=round(props.total_memory / 2**30, 1),
            gpus_visible=torch.cuda.device_count(),
            driver=_driver(),
        )
    else:
        info.update(device_name=f"CPU ({info['cpu']})", driver=None)
    return info


def _driver() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no nvidia-smi)"


# --------------------------------------------------------------------------- 1. a 2-job sweep sharing a GPU


def write_data(root: Path, per_class: int) -> Path:
    """A small CIFAR-10 in torchvision's layout (random images): the sweep needs data, not accuracy."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", per_class * 2) for i in range(1, 6)), ("test_batch", per_class * 2)]:
        labels = np.repeat(np.arange(10), n // 10 or 1)
        images = rng.integers(0, 256, size=(len(labels), 3 * 32 * 32), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({"data": images, "labels": labels.tolist()}))
    return root


def check_sweep(device: str, data: Path, work: Path, size: _Size, say) -> dict:
    """`run.py -m` with joblib's 2 workers and runs_per_gpu=2: two processes, each on its own device slot."""
    out, slots = work / "runs", work / "slots"
    command = [
        sys.executable,
        "-m",
        "resnet_repro",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "arch=plain,resnet",
        "depth=8",
        f"steps={size.sweep_steps}",
        f"eval_every={size.sweep_steps}",
        "batch_size=16",
        "data.val_size=20",
        "data.cache_dir=null",
        "data.subset=gpucheck",  # generated images, not CIFAR-10's counts
        f"data.root={data}",
        f"out_dir={out}",
        "name=gpucheck",
        "trainer.runs_per_gpu=2",
        "trainer.compile=false",
        "trainer.progress_bar=false",
        f"trainer.accelerator={device}",
        f"hydra.sweep.dir={work / 'sweep'}",
    ]
    env = {**os.environ, "RESNET_REPRO_GPU_SLOTS": str(slots)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    output = done.stdout + done.stderr
    starts = re.findall(r"\[start\] (\S+) on (\S+?),", output)
    jobs = []
    for run_dir in sorted((out / "gpucheck").glob("*/seed*")):
        status = json.loads((run_dir / "status.json").read_text()) if (run_dir / "status.json").is_file() else {}
        env_file = run_dir / "trained_with.json"
        trained = json.loads(env_file.read_text()) if env_file.is_file() else [{}]
        trained = trained[-1] if isinstance(trained, list) else trained  # one entry per start of the run
        jobs.append({"run": f"{run_dir.parent.name}/{run_dir.name}", "state": status.get("state"), **trained})
    held = sorted(p.name for p in slots.rglob("*.lock")) if slots.exists() else []
    ok = done.returncode == 0 and len(jobs) == 2 and all(j["state"] == "done" for j in jobs) and len(starts) == 2
    if device == "cuda":  # two slots of the GPU were taken: the second is only tried while the first is held
        ok = ok and len(held) >= 2
    line = f"sweep: exit {done.returncode}, {len(jobs)} runs " + ", ".join(f"{r} on {d}" for r, d in starts)
    say(line + (f"; GPU slots taken: {', '.join(held)}" if device == "cuda" else "; no GPU slots on a CPU"))
    return {
        "ok": ok,
        "exit": done.returncode,
        "starts": [{"run": r, "device": d} for r, d in starts],
        "jobs": jobs,
        "slots_taken": held,
        "output_tail": output[-3000:] if not ok else "",
    }


# --------------------------------------------------------------------------- 2. no sync in a training step


def _spec(device: str, depth: int, precision: str, compile: str, steps: int, batch: int, arch: str = "resnet"):
    from .config import compose, resolve

    overrides = [
        f"arch={arch}",
        f"depth={depth}",
        f"steps={steps}",
        f"eval_every={steps}",
        f"batch_size={batch}",
        f"trainer.accelerator={device}",
        f"trainer.precision={precision}",
        f"trainer.compile={compile}",
        "trainer.progress_bar=false",
        f"out_dir={tempfile.gettempdir()}/resnet-repro-gpucheck-unused",
    ]
    return resolve(compose(overrides), check_data=False)


def _random_stream(spec, device, n_images: int):
    from .data import TrainBatches

    images = torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n_images,))
    return TrainBatches(images, labels, images.float().mean(0) / 255, spec.batch_size, 0, device=device)


@contextlib.contextmanager
def _sync_debug(device: str, mode: str):
    if device != "cuda":
        yield
        return
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def check_sync(device: str, size: _Size, say) -> list[dict]:
    """SYNC_STEPS steps of the run's own Trainer and module, under set_sync_debug_mode("error")."""
    import pytorch_lightning as pl

    from .train import build_module, build_trainer

    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)  # per-fit banners
    results = []
    for precision in PRECISIONS:
        for compile in size.compile_modes:
            spec = _spec(device, size.sync_depth, precision, compile, size.sync_steps, size.batch)
            module = build_module(spec)
            with tempfile.TemporaryDirectory() as root:
                trainer = build_trainer(spec, root, device=0 if device == "cuda" else None)
                stream = _random_stream(spec, trainer.strategy.root_device, 4 * size.batch)
                pl.seed_everything(0, verbose=False)
                error = None
                start = time.monotonic()
                try:
                    with _sync_debug(device, "error"):
                        trainer.fit(module, train_dataloaders=stream)
                except RuntimeError as e:  # the sync, and where it happened (the step, or Lightning's loop)
                    frames = traceback.extract_tb(e.__traceback__)[-3:]
                    error = f"{str(e).splitlines()[0]} at " + " < ".join(
                        f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames)
                    )
            ok = error is None and trainer.global_step == spec.steps
            results.append(
                {
                    "precision": precision,
                    "compile": compile,
                    "steps": trainer.global_step,
                    "ok": ok,
                    "error": error,
                    "seconds": round(time.monotonic() - start, 1),
                }
            )
            say(
                f"sync: {precision}, {'compiled' if compile == 'true' else 'eager'}: {trainer.global_step} steps "
                + (
                    f"FAILED: {error}"
                    if not ok
                    else "with no host-device sync"
                    if device == "cuda"
                    else "(CPU: no sync to see)"
                )
            )
    return results


# --------------------------------------------------------------------------- 3. TF32 off under 32-true


def check_tf32(device: str, say) -> dict:
    from .devices import tf32_allowed, use_float32_precision

    use_float32_precision("32-true")
    switches_off = not tf32_allowed()
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=gen), torch.randn(512, 512, generator=gen)
    x, w = torch.randn(8, 64, 32, 32, generator=gen), torch.randn(64, 64, 3, 3, generator=gen)
    ref_mm, ref_conv = a.double() @ b.double(), F.conv2d(x.double(), w.double(), padding=1)
    dev = torch.device(device)
    mm = (a.to(dev) @ b.to(dev)).double().cpu()
    conv = F.conv2d(x.to(dev), w.to(dev), padding=1).double().cpu()
    errors = {
        "matmul": float((mm - ref_mm).abs().max() / ref_mm.abs().max()),
        "conv": float((conv - ref_conv).abs().max() / ref_conv.abs().max()),
    }
    use_float32_precision("bf16-mixed")  # torch's defaults back
    # fp32 computes these to ~1e-6 of their largest value; TF32 (10-bit mantissa) to ~1e-3.
    ok = switches_off and all(e < 1e-4 for e in errors.values())
    say(
        f"tf32: under 32-true the switches say {'off' if switches_off else 'ON'}; max relative error vs float64: "
        f"matmul {errors['matmul']:.1e}, conv {errors['conv']:.1e} ({'fp32' if ok else 'NOT fp32'})"
    )
    return {"ok": ok, "switches_off": switches_off, "relative_error": errors}


# --------------------------------------------------------------------------- 4. timing


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_steps(device: str, size: _Size, say) -> list[dict]:
    """Seconds per training step and per evaluated image, per net, precision and compile mode: forward,
    loss, backward and SGD step, as the run computes them (its module, autocast, channels_last)."""
    from .train import build_module

    dev = torch.device(device)
    rows = []
    for depth in size.depths:
        for precision in PRECISIONS:
            for compile in size.compile_modes:
                spec = _spec(device, depth, precision, compile, FULL_RUN_STEPS, size.batch)
                warmup_s, step_s, eval_s = _time_one(build_module(spec).to(dev), spec, dev, size)
                rows.append(
                    {
                        "depth": depth,
                        "precision": precision,
                        "compile": compile,
                        "step_ms": round(step_s * 1000, 3),
                        "eval_ms_per_1k_images": round(eval_s * 1000 * 1000, 3),
                        "warmup_s": round(warmup_s, 1),
                    }
                )
                say(
                    f"timing: ResNet-{depth}, {precision}, {'compiled' if compile == 'true' else 'eager'}: "
                    f"{step_s * 1000:.2f} ms/step, eval {eval_s * 1e6:.1f} ms per 1k images "
                    f"(warm-up {warmup_s:.0f} s)"
                )
    return rows


def _time_one(module, spec, dev: torch.device, size: _Size) -> tuple[float, float, float]:
    """(warm-up seconds, seconds per training step, seconds per evaluated image) of one module."""
    opt = torch.optim.SGD(module.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    stream = iter(_random_stream(spec, dev, 8 * size.batch))
    bf16 = spec.trainer.precision == "bf16-mixed"

    def step():
        images, labels = next(stream)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(module(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    started = time.monotonic()
    for _ in range(size.warmup_steps):  # compiling happens here
        step()
    _sync(dev.type)
    warmup_s = time.monotonic() - started
    started = time.monotonic()
    for _ in range(size.timed_steps):
        step()
    _sync(dev.type)
    step_s = (time.monotonic() - started) / size.timed_steps
    return warmup_s, step_s, _time_eval(module, dev, spec.trainer.precision, size)


@torch.inference_mode()
def _time_eval(module, dev, precision: str, size: _Size) -> float:
    """Seconds per evaluated image (eager, as the run's evaluations are), at the run's eval batch size."""
    model = module.model.eval()
    batch = torch.randn(256, 3, 32, 32, device=dev).to(memory_format=torch.channels_last)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    batches = max(1, size.eval_images // 256)
    with autocast:
        model(batch)
        _sync(dev.type)
        started = time.monotonic()
        for _ in range(batches):
            model(batch).float().argmax(1)
        _sync(dev.type)
    model.train()
    return (time.monotonic() - started) / (batches * 256)


def extrapolate(timing: list[dict]) -> list[dict]:
    """A 64,000-iteration run (steps plus the evaluations of the default config: val 5k + test 10k images
    every eval_every steps) and the Figure-6 sweep run one after another, per precision and compile mode.
    Step time is taken as linear in depth between the two nets timed (one net timed: proportional)."""
    from .config import compose

    paper = compose([f"steps={FULL_RUN_STEPS}"])  # eval_every follows steps: resolved for the paper's run
    eval_every, val = int(paper.eval_every), int(paper.data.val_size)
    eval_images = (FULL_RUN_STEPS // eval_every) * (val + 10000)
    out = []
    for precision in PRECISIONS:
        for compile in COMPILE_MODES:
            rows = sorted((r for r in timing if (r["precision"], r["compile"]) == (precision, compile)), key=_depth)
            if not rows:
                continue

            def run_s(depth: int, rows=rows) -> float:
                step, evaluation = _linear(rows, "step_ms", depth), _linear(rows, "eval_ms_per_1k_images", depth)
                return (step * FULL_RUN_STEPS + evaluation * eval_images / 1000) / 1000

            out.append(
                {
                    "precision": precision,
                    "compile": compile,
                    "resnet56_64k_min": round(run_s(56) / 60, 2),
                    "resnet20_64k_min": round(run_s(20) / 60, 2),
                    "figure6_sequential_min": round(sum(run_s(d) for _, d in FIGURE6) / 60, 1),
                    "compile_s_not_counted": round(sum(r["warmup_s"] for r in rows), 1) if compile == "true" else 0,
                }
            )
    return out


def _depth(row: dict) -> int:
    return row["depth"]


def _linear(rows: list[dict], key: str, depth: int) -> float:
    if len(rows) == 1:
        return rows[0][key] * depth / rows[0]["depth"]
    (d0, y0), (d1, y1) = (rows[0]["depth"], rows[0][key]), (rows[-1]["depth"], rows[-1][key])
    return y0 + (y1 - y0) * (depth - d0) / (d1 - d0)


# --------------------------------------------------------------------------- the result files


def write_result(result: dict, folder: Path) -> tuple[Path, Path]:
    m = result["machine"]
    slug = re.sub(r"[^a-z0-9]+", "-", m["device_name"].lower()).strip("-")[:40]
    stem = f"{'simulated-' if result['simulated'] else ''}{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    while (folder / f"{stem}.json").exists() or (folder / f"{stem}.md").exists():  # never overwrite
        n += 1
        stem = f"{stem.rsplit('~', 1)[0]}~{n}"
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(render(result))
    return json_path, md_path


def render(result: dict) -> str:
    m = result["machine"]
    lines = [f"# GPU check: {m['device_name']}", ""]
    if result["simulated"]:
        lines += [
            "**SIMULATED on the CPU with tiny sizes: the script's code ran, nothing about a GPU is measured.**",
            "",
        ]
    lines += [
        f"- device: {m['device_name']}"
        + (
            f", compute capability {m['capability']}, {m['memory_gib']} GiB, driver {m['driver']}"
            if m["driver"]
            else ""
        ),
        f"- torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}, Python {m['python']}; host CPU {m['cpu']}",
        f"- code: {m['commit']}; run {m['date']}",
        f"- result: {'all checks passed' if result['ok'] else 'SOME CHECKS FAILED'}",
        "",
        "## Sweep: 2 jobs, joblib, trainer.runs_per_gpu=2",
        "",
    ]
    s = result["sweep"]
    lines += [f"exit {s['exit']}; " + ", ".join(f"`{x['run']}` on {x['device']}" for x in s["starts"])]
    lines += [f"GPU slots taken: {', '.join(s['slots_taken']) or 'none (CPU)'}", ""]
    lines += ["## No host-device sync in 50 steps (set_sync_debug_mode('error'))", ""]
    lines += ["| precision | compile | steps | result |", "|---|---|---|---|"]
    lines += [
        f"| {r['precision']} | {r['compile']} | {r['steps']} | {'no sync' if r['ok'] else r['error']} |"
        for r in result["sync"]
    ]
    t = result["tf32"]
    lines += ["", "## TF32 under 32-true", ""]
    lines += [
        f"switches off: {t['switches_off']}; max relative error vs float64: matmul "
        f"{t['relative_error']['matmul']:.1e}, conv {t['relative_error']['conv']:.1e} (TF32 would be ~1e-3)",
        "",
        f"## Timing (batch {result['size']['batch']}, {result['size']['timed_steps']} timed steps after "
        f"{result['size']['warmup_steps']} warm-up steps)",
        "",
        "| net | precision | compile | ms/step | eval ms / 1k images | warm-up s (incl. compiling) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| ResNet-{r['depth']} | {r['precision']} | {r['compile']} | {r['step_ms']} | "
        f"{r['eval_ms_per_1k_images']} | {r['warmup_s']} |"
        for r in result["timing"]
    ]
    lines += [
        "",
        "## Extrapolated (not measured end to end)",
        "",
        "A 64,000-iteration run: steps x 64,000 plus the default config's evaluations (val + test every "
        "eval_every steps); step time linear in depth between the nets timed; compiling not counted. The "
        "Figure-6 sweep (plain 20-56, ResNet 20-110, one seed) run one after another; two runs sharing a "
        "GPU (runs_per_gpu=2) may be faster, unmeasured.",
        "",
        "| precision | compile | ResNet-20 run, min | ResNet-56 run, min | Figure-6 sweep, min |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {e['precision']} | {e['compile']} | {e['resnet20_64k_min']} | {e['resnet56_64k_min']} | "
        f"{e['figure6_sequential_min']} |"
        for e in result["extrapolated"]
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
