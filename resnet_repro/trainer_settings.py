"""How a run computes on this machine: the `trainer.*` settings checked and every `auto` decided.

    accelerator  auto -> cuda where torch finds a GPU, else cpu (gpu is a spelling of cuda)
    precision    auto -> bf16-mixed where the hardware computes bf16 natively (CUDA GPUs of compute
                 capability 8.0 or later: A100, H100, RTX 30xx/40xx; CPUs with AVX512-BF16 or AMX),
                 else 32-true, the paper's fp32 (on MPS too: bf16 there is unmeasured)
    compile      auto -> torch.compile's default mode (no CUDA graphs) for runs of >= 5000 steps on a GPU
                 that Triton compiles for (compute capability 7.0 or later, Triton installed), and on a
                 CPU where conf/cpu_kinds.yaml says it measured faster for that kind of CPU and
                 precision; eager otherwise, and always on MPS (Inductor's MPS backend is unmeasured)
    keep_freed_memory  auto -> on for a CPU run where conf/cpu_kinds.yaml says it measured faster for that
                 kind of CPU (allocator.py); off on a GPU, whose activations are not in the CPU's memory
    progress_bar auto -> a live bar on a terminal, a line every 10% in a job's log

Called by `config.resolve`; the values land in the RunSpec's TrainerSettings (spec.py). A CUDA run's
`auto`s are decided again for the GPU it claims (`on_claimed_gpu`, devices.py): on a machine of mixed
GPUs, the one it trains on, not GPU 0. An explicit trainer.compile on a GPU that Triton cannot compile
for (any visible one) is refused when resolved, before any work.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .errors import ConfigError
from .machine import cpu_has_native_bf16, read_cpu
from .spec import TrainerSettings

# Inductor's GPU code is Triton's, which needs compute capability 7.0 (Volta) or later.
TRITON_MIN_CAPABILITY = (7, 0)
# Runs shorter than this stay eager under compile=auto: compiling costs 1-3 minutes on the 2-core
# CPU and the compiled fp32 step is 6-11% faster there, so it pays back after a few thousand steps.
COMPILE_AUTO_MIN_STEPS = 5000
# Per kind of CPU, whether compiling measured faster than eager (by precision): data, with its measurements.
CPU_KINDS = Path(__file__).resolve().parent / "conf" / "cpu_kinds.yaml"
# trainer.compile spellings: these leave the model eager; these use torch.compile's default mode.
EAGER = ("false", "none", "off", "0")
COMPILE_DEFAULT = ("true", "default", "1")
COMPILE_MODES = ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
PRECISIONS = {"auto": "auto", "32-true": "32-true", "32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
PROGRESS = {"auto": "auto", "true": "bar", "bar": "bar", "lines": "lines", "false": "off", "off": "off", "none": "off"}
# Set in the jobs of Slurm and of submitit (local or Slurm): their output goes to a log file.
SCHEDULER_ENV = ("SLURM_JOB_ID", "SUBMITIT_EXECUTOR")


def resolve_trainer(c, steps: int) -> TrainerSettings:
    """The `trainer.*` settings of the checked flat config `c` (config._Checker), resolved."""
    accelerator = _accelerator(c.raw("trainer.accelerator"))
    precision = _precision(c.raw("trainer.precision"), accelerator)
    threads = c.raw("trainer.threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"trainer.threads={threads} must be a positive whole number, or null for torch's default")
    return TrainerSettings(
        accelerator=accelerator,
        precision=precision,
        compile=_compile(c.raw("trainer.compile"), accelerator, precision, steps),
        channels_last=c.flag("trainer.channels_last"),
        threads=threads,
        keep_freed_memory=_keep_freed_memory(c.raw("trainer.keep_freed_memory"), accelerator),
        cudnn_benchmark=c.flag("trainer.cudnn_benchmark"),
        deterministic=c.flag("trainer.deterministic"),
        eval_batch_size=c.whole("trainer.eval_batch_size"),
        checkpoint_every=c.whole("trainer.checkpoint_every"),
        snapshots=_snapshots(c.raw("trainer.snapshots")),
        progress_bar=_progress(c.raw("trainer.progress_bar")),
        runs_per_gpu=c.whole("trainer.runs_per_gpu"),
    )


def _snapshots(value) -> tuple[float, ...]:
    """trainer.snapshots: fractions of the schedule in [0, 1], each once, in order."""
    if value is None:
        return ()
    fractions = value if isinstance(value, list) else None
    if fractions is None or any(
        isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f <= 1 for f in fractions
    ):
        raise ConfigError(
            f"trainer.snapshots={value} must be a list of fractions of steps in [0, 1], e.g. [0, 0.1, 1.0], or []"
        )
    return tuple(sorted({float(f) for f in fractions}))


def _accelerator(value) -> str:
    """trainer.accelerator, with auto resolved: cuda when there is a GPU, else cpu."""
    value = str(value).lower()
    if value not in ACCELERATORS:
        raise ConfigError(f"trainer.accelerator={value} is unknown; use {', '.join(ACCELERATORS)}")
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={value}, but torch finds no CUDA device here; use trainer.accelerator=cpu or auto"
        )
    value = "cuda" if value == "gpu" else value  # Lightning's two names for one device kind
    if value == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            "trainer.accelerator=mps, but torch finds no MPS device here; use trainer.accelerator=cpu or auto"
        )
    return value


def cuda_has_native_bf16(device: int = 0) -> bool:
    """Whether GPU `device` computes bf16 in hardware (compute capability 8.0 or later: Ampere, Hopper...).
    Older ones (V100, T4) emulate it, slower than fp32."""
    return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)


def has_triton() -> bool:
    """Whether Triton, Inductor's GPU compiler, is installed (it is not on Windows, nor in some containers)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # ValueError: a module stubbed out as None
        return False


def triton_cannot_compile(device: int) -> str | None:
    """Why torch.compile cannot run on GPU `device` (each run would fail at its first step), or None."""
    if not has_triton():
        return "torch.compile needs Triton on a GPU, and it is not installed (pip install triton; none on Windows)"
    capability = tuple(torch.cuda.get_device_capability(device))
    if capability < TRITON_MIN_CAPABILITY:
        return (
            f"GPU {device} has compute capability {capability[0]}.{capability[1]}, and torch.compile's "
            f"Triton needs {TRITON_MIN_CAPABILITY[0]}.{TRITON_MIN_CAPABILITY[1]} or later"
        )
    return None


def on_claimed_gpu(spec, device: int | None):
    """`spec` with its `auto` precision and compile decided for GPU `device`, the one the run claimed
    (resolve decided them for GPU 0, before the claim); `spec` itself off CUDA or where nothing changes."""
    settings = spec.trainer
    if settings.accelerator != "cuda" or device is None:
        return spec
    requested = spec.config.get("trainer", {})
    precision = _precision(requested.get("precision", "auto"), "cuda", device)
    compile = _compile(requested.get("compile", "auto"), "cuda", precision, spec.steps, device)
    if (precision, compile) == (settings.precision, settings.compile):
        return spec
    return dataclasses.replace(spec, trainer=dataclasses.replace(settings, precision=precision, compile=compile))


def _precision(value, accelerator: str, device: int = 0) -> str:
    """trainer.precision, with auto resolved: bf16-mixed where the hardware computes bf16 natively, else fp32."""
    precision = PRECISIONS.get(str(value).lower())
    if precision is None:
        raise ConfigError(f"trainer.precision={value} is unknown; use auto, 32-true (fp32, the paper's) or bf16-mixed")
    if precision == "16-mixed" and accelerator != "cuda":
        raise ConfigError(
            f"trainer.precision=16-mixed needs a CUDA GPU (this run is on {accelerator}); use bf16-mixed or 32-true"
        )
    if precision != "auto":
        return precision
    if accelerator == "cuda":
        return "bf16-mixed" if cuda_has_native_bf16(device) else "32-true"
    return "bf16-mixed" if accelerator == "cpu" and cpu_has_native_bf16() else "32-true"


@functools.cache
def cpu_kinds() -> dict:
    return OmegaConf.to_container(OmegaConf.load(CPU_KINDS))


def measured_faster(setting: str) -> bool:
    """Whether conf/cpu_kinds.yaml has `setting` measured faster on this CPU's kind (vendor, family, model);
    False for a kind not measured."""
    cpu = read_cpu()
    return bool(cpu_kinds().get(f"{cpu.vendor}-{cpu.kind}", {}).get(setting, False))


def compile_measured_faster(precision: str) -> bool:
    """Whether compiling measured faster than eager on this CPU's kind, in `precision`."""
    return measured_faster("compile_bf16" if precision == "bf16-mixed" else "compile_fp32")


def _compile(value, accelerator: str, precision: str, steps: int, device: int | None = None) -> str:
    """trainer.compile, with auto resolved: compile runs of >= COMPILE_AUTO_MIN_STEPS steps, on a CPU only
    where compiling measured faster for its kind and this precision (compile_measured_faster), on a GPU
    only where Triton compiles for it, never on MPS. "false" for every spelling that leaves the model
    eager, "true" for torch.compile's default mode. auto never picks a mode with CUDA graphs: they are a
    GPU user's explicit choice. `device`: the claimed GPU; None (when resolved) checks every visible GPU
    for an explicit compile, GPU 0 for auto."""
    value = str(value).lower()
    if value in EAGER:
        return "false"
    if value not in (*COMPILE_DEFAULT, *COMPILE_MODES, "auto"):
        raise ConfigError(
            f"trainer.compile={value} is unknown; use auto, true, false, {' or '.join(COMPILE_MODES[:2])}"
        )
    if value != "auto":
        if accelerator == "cuda":
            for gpu in range(torch.cuda.device_count()) if device is None else [device]:
                if why := triton_cannot_compile(gpu):
                    raise ConfigError(
                        f"trainer.compile={value}: {why}; use trainer.compile=false (or auto), or "
                        "CUDA_VISIBLE_DEVICES to the GPUs it compiles for"
                    )
        return "true" if value in COMPILE_DEFAULT else value
    if accelerator == "mps" or (accelerator == "cpu" and not compile_measured_faster(precision)):
        return "false"
    if accelerator == "cuda" and triton_cannot_compile(device or 0):
        return "false"
    return "true" if steps >= COMPILE_AUTO_MIN_STEPS else "false"


def _keep_freed_memory(value, accelerator: str) -> bool:
    """trainer.keep_freed_memory, with auto resolved: on for a CPU run where it measured faster on this
    kind of CPU (conf/cpu_kinds.yaml)."""
    keep = str(value).lower()
    if keep not in ("auto", "true", "false"):
        raise ConfigError(f"trainer.keep_freed_memory={value} is unknown; use auto, true or false")
    if keep != "auto":
        return keep == "true"
    return accelerator == "cpu" and measured_faster("keep_freed_memory")


def _progress(value) -> str:
    """trainer.progress_bar: "bar", "lines" or "off"; auto is a bar on a terminal, else lines: a bar
    redrawn in a job's log file writes thousands of lines, a line every 10% writes ten."""
    progress = PROGRESS.get(str(value).lower())
    if progress is None:
        raise ConfigError(f"trainer.progress_bar={value} is unknown; use auto, bar, lines or false")
    if progress != "auto":
        return progress
    interactive = sys.stdout.isatty() and not any(key in os.environ for key in SCHEDULER_ENV)
    return "bar" if interactive else "lines"
