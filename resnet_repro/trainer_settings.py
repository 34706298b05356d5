"""How a run computes on this machine: the `trainer.*` settings checked and every `auto` decided.

    accelerator  auto -> cuda where torch finds a GPU, else cpu (gpu is a spelling of cuda)
    precision    auto -> bf16-mixed where the hardware computes bf16 natively (CUDA GPUs of compute
                 capability 8.0 or later: A100, H100, RTX 30xx/40xx; CPUs with AVX512-BF16 or AMX),
                 else 32-true, the paper's fp32
    compile      auto -> torch.compile's default mode (no CUDA graphs) for runs of >= 5000 steps on a GPU,
                 and on a CPU where conf/cpu_kinds.yaml says it measured faster for that kind of CPU and
                 precision; eager otherwise
    keep_freed_memory  auto -> on for a CPU run where conf/cpu_kinds.yaml says it measured faster for that
                 kind of CPU (allocator.py); off on a GPU, whose activations are not in the CPU's memory
    progress_bar auto -> a live bar on a terminal, a line every 10% in a job's log

Called by `config.resolve`; the values land in the RunSpec's TrainerSettings (spec.py).
"""

from __future__ import annotations

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
LOGGERS = {"none": "none", "false": "none", "tensorboard": "tensorboard"}
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
        progress_bar=_progress(c.raw("trainer.progress_bar")),
        runs_per_gpu=c.whole("trainer.runs_per_gpu"),
        logger=_logger(c.raw("trainer.logger")),
    )


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


def cuda_has_native_bf16() -> bool:
    """Whether the GPUs here compute bf16 in hardware (compute capability 8.0 or later: Ampere, Hopper...).
    Older ones (V100, T4) emulate it, slower than fp32. Reads GPU 0: a machine's GPUs are alike."""
    return torch.cuda.get_device_capability(0) >= (8, 0)


def _precision(value, accelerator: str) -> str:
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
        return "bf16-mixed" if cuda_has_native_bf16() else "32-true"
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


def _compile(value, accelerator: str, precision: str, steps: int) -> str:
    """trainer.compile, with auto resolved: compile runs of >= COMPILE_AUTO_MIN_STEPS steps, on a CPU only
    where compiling measured faster for its kind and this precision (compile_measured_faster).
    "false" for every spelling that leaves the model eager, "true" for torch.compile's default mode.
    auto never picks a mode with CUDA graphs: they are a GPU user's explicit choice."""
    value = str(value).lower()
    if value in EAGER:
        return "false"
    if value in COMPILE_DEFAULT:
        return "true"
    if value in COMPILE_MODES:
        return value
    if value != "auto":
        raise ConfigError(
            f"trainer.compile={value} is unknown; use auto, true, false, {' or '.join(COMPILE_MODES[:2])}"
        )
    if accelerator == "cpu" and not compile_measured_faster(precision):
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


def _logger(value) -> str:
    """trainer.logger: none, or tensorboard (an optional dependency, checked here, before any work)."""
    logger = LOGGERS.get(str(value).lower())
    if logger is None:
        raise ConfigError(f"trainer.logger={value} is unknown; use none or tensorboard")
    if logger == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "trainer.logger=tensorboard needs the tensorboard package: pip install tensorboard "
            "(or pip install 'resnet-repro[tensorboard]'), or set trainer.logger=none"
        )
    return logger
