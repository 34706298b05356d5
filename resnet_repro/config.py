"""A run's description: compose the config, check every setting, resolve it into a frozen RunSpec.

    cfg = compose(["arch=plain", "depth=56"])   # conf/config.yaml + overrides, as run.py sees them
    spec = resolve(cfg)                          # every setting checked, every `auto` decided, once
    train(spec)

Everything after `resolve` (training, the module, the Trainer, the benchmark, sweeps) reads the
RunSpec, never the raw config: a setting is parsed in one place, and a bad one is refused here,
before any work, in one line that names the fix (ConfigError). The defaults are data
(resnet_repro/conf/config.yaml, shipped inside the package); this module reads them, it never
repeats them.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data import detect_layout, missing_data_message
from .models import Net
from .runs import flatten  # also registers the run_name resolver the config uses

CONF_DIR = Path(__file__).resolve().parent / "conf"


class ConfigError(ValueError):
    """A bad setting, found before any work starts; the message names the fix."""


# --------------------------------------------------------------------------- composing


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config run.py sees with these overrides (conf/config.yaml, presets, Hydra's override syntax).
    An override Hydra cannot apply (a misspelt key: dept=20) is a ConfigError naming the nearest key."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import CompactHydraException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides or []))
    except CompactHydraException as e:
        raise ConfigError(hydra_error_line(e)) from None


@functools.cache
def defaults() -> dict:
    """conf/config.yaml's settings, flat and unresolved ({"optim.lr": 0.1, "log_every": "${eval_every}", ...})."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"), resolve=False)
    return flatten({k: v for k, v in cfg.items() if k not in ("defaults", "hydra")})


def nearest_key(key: str) -> str | None:
    """The setting `key` is most likely a misspelling of, or None."""
    keys = list(defaults())
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not match:  # a misspelt last part of a dotted key: trainer.precison -> trainer.precision
        last = {k.rsplit(".", 1)[-1]: k for k in keys}
        match = [last[m] for m in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(last), n=1, cutoff=0.7)]
    return match[0] if match else None


def _did_you_mean(key: str, value: str) -> str:
    near = nearest_key(key)
    return f"; did you mean {near}={value}?" if near else "; the settings are listed in conf/config.yaml"


def hydra_error_line(error: Exception) -> str:
    """Hydra's message for an override it cannot apply, in one line, with the nearest valid key."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if error.__cause__ is not None:
        lines += [line.strip() for line in str(error.__cause__).splitlines()[:1] if line.strip()]
    kept = []
    for line in lines:
        if line.startswith(("Config search path", "provider=", "full_key:", "object_type=")):
            break  # the search path and OmegaConf's key details: not for a user
        if not line.startswith("To append to your config use"):  # settings the project does not read are refused
            kept.append(line)
    message, listing = "", False
    for line in kept:  # a heading's list ("Available options in 'experiment':") joined by commas
        message += (", " if listing and not message.endswith(":") else " ") + line if message else line
        listing = listing or line.endswith(":")
    if m := re.search(r"Could not override '([^']+)'", message):
        value = re.search(r"use \+\S+?=(.*)$", str(error), re.MULTILINE)
        message += _did_you_mean(m.group(1), value.group(1).strip() if value else "...")
    return message


# --------------------------------------------------------------------------- the run's description


@dataclass(frozen=True)
class Optim:
    lr: float
    momentum: float
    weight_decay: float
    lr_milestones: tuple[float, ...]  # fractions of steps
    lr_decay: float


@dataclass(frozen=True)
class Warmup:
    enabled: bool  # warmup.enabled=auto resolved
    lr: float
    until_train_error: float
    check_every: int


@dataclass(frozen=True)
class Data:
    root: Path
    download: bool
    cache_dir: Path | None
    val_size: int
    split_seed: int


@dataclass(frozen=True)
class TrainerSettings:
    """How and where the run computes (may change on resume); every `auto` resolved for this machine."""

    accelerator: str  # cpu | cuda | mps
    precision: str  # 32-true | bf16-mixed | 16-mixed
    compile: str  # "false" (eager) | "true" (torch.compile's default mode) | a torch.compile mode
    channels_last: bool
    threads: int | None  # CPU threads of PyTorch's ops; None = torch's default
    cudnn_benchmark: bool
    deterministic: bool
    eval_batch_size: int
    checkpoint_every: int
    progress_bar: bool

    @property
    def compiled(self) -> bool:
        return self.compile != "false"


@dataclass(frozen=True)
class RunSpec:
    """One run, resolved: what it learns, how it computes, where it lives."""

    net: Net
    seed: int
    steps: int
    batch_size: int
    eval_every: int
    log_every: int
    optim: Optim
    warmup: Warmup
    data: Data
    trainer: TrainerSettings
    run_id: str
    run_dir: Path
    report: bool
    config: dict = field(compare=False, repr=False)  # the composed config, resolved: what the run directory records


# Runs shorter than this stay eager under compile=auto: compiling costs 1-3 minutes on the 2-core
# CPU and the compiled fp32 step is 6-11% faster there, so it pays back after a few thousand steps.
COMPILE_AUTO_MIN_STEPS = 5000
# warmup.enabled=auto: the paper warms up ResNet-110 (lr 0.01 until training error < 80%), and says
# 0.1 is too large to start converging at that depth; deeper nets (1202) get the same.
WARMUP_AUTO_MIN_DEPTH = 110
# trainer.compile spellings: these leave the model eager; these use torch.compile's default mode.
EAGER = ("false", "none", "off", "0")
COMPILE_DEFAULT = ("true", "default", "1")
COMPILE_MODES = ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ACCELERATORS = ("auto", "cpu", "cuda", "mps")
PRECISIONS = {"auto": "auto", "32-true": "32-true", "32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}


def resolve(cfg: DictConfig, check_data: bool = True) -> RunSpec:
    """Check every setting of `cfg` and resolve it into a RunSpec; ConfigError (one line, naming the fix)
    for the first bad one. `check_data=False` skips looking for data.root (the benchmark's generated images)."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:  # an interpolation that cannot be resolved
        raise ConfigError(f"cannot resolve the config: {str(e).splitlines()[0]}") from None
    config = {k: v for k, v in config.items() if k != "hydra"}
    unknown = sorted(set(flatten(config)) - set(defaults()))
    if unknown:
        key = unknown[0]
        raise ConfigError(f"{key} is not a setting of this project, so it would change nothing"
                          f"{_did_you_mean(key, flatten(config)[key])} (or remove it)")  # fmt: skip
    c = _Checker(flatten(config))
    try:
        net = Net.of(c.raw("arch"), c.raw("depth"), c.raw("shortcut"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    steps = c.whole("steps")
    eval_every, log_every = c.whole("eval_every"), c.whole("log_every")
    if eval_every > steps:
        raise ConfigError(f"eval_every={eval_every} is larger than steps={steps}; set eval_every <= steps")
    if log_every > eval_every:
        raise ConfigError(f"log_every={log_every} is larger than eval_every={eval_every}; set log_every <= eval_every")
    seed = c.whole("seed", minimum=0, maximum=2**32 - 1)
    batch_size = c.whole("batch_size")

    milestones = c.raw("optim.lr_milestones")
    if not isinstance(milestones, list) or any(_number(m) is None or not 0 < m <= 1 for m in milestones):
        raise ConfigError(f"optim.lr_milestones={milestones} must be a list of fractions of steps in (0, 1], "
                          f"e.g. {defaults()['optim.lr_milestones']}")  # fmt: skip
    optim = Optim(lr=c.number("optim.lr", above=0), momentum=c.number("optim.momentum", low=0, below=1),
                  weight_decay=c.number("optim.weight_decay", low=0), lr_milestones=tuple(float(m) for m in milestones),
                  lr_decay=c.number("optim.lr_decay", above=0, high=1))  # fmt: skip

    enabled = c.raw("warmup.enabled")
    if enabled not in ("auto", True, False):
        raise ConfigError(f"warmup.enabled={enabled} must be auto, true or false")
    warmup = Warmup(enabled=net.depth >= WARMUP_AUTO_MIN_DEPTH if enabled == "auto" else enabled,
                    lr=c.number("warmup.lr", above=0), until_train_error=c.number("warmup.until_train_error", above=0),
                    check_every=c.whole("warmup.check_every"))  # fmt: skip

    root, cache_dir = c.raw("data.root"), c.raw("data.cache_dir")
    if not isinstance(root, str) or not root:
        raise ConfigError(f"data.root={root} must be a path to CIFAR-10 (see the README, Data)")
    data = Data(root=Path(root).expanduser(), download=c.flag("data.download"),
                cache_dir=None if cache_dir is None else Path(str(cache_dir)).expanduser(),
                val_size=c.whole("data.val_size", minimum=0), split_seed=c.whole("data.split_seed", minimum=0))  # fmt: skip

    accelerator = _accelerator(c.raw("trainer.accelerator"))
    precision = _precision(c.raw("trainer.precision"), accelerator)
    threads = c.raw("trainer.threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"trainer.threads={threads} must be a positive whole number, or null for torch's default")
    trainer = TrainerSettings(
        accelerator=accelerator, precision=precision, compile=_compile(c.raw("trainer.compile"), accelerator, precision, steps),
        channels_last=c.flag("trainer.channels_last"), threads=threads, cudnn_benchmark=c.flag("trainer.cudnn_benchmark"),
        deterministic=c.flag("trainer.deterministic"), eval_batch_size=c.whole("trainer.eval_batch_size"),
        checkpoint_every=c.whole("trainer.checkpoint_every"), progress_bar=c.flag("trainer.progress_bar"),
    )  # fmt: skip
    if check_data and not data.download and detect_layout(data.root) is None:  # last: the settings come first
        raise ConfigError(missing_data_message(data.root))
    return RunSpec(net=net, seed=seed, steps=steps, batch_size=batch_size, eval_every=eval_every, log_every=log_every,
                   optim=optim, warmup=warmup, data=data, trainer=trainer, run_id=str(c.raw("run_id")),
                   run_dir=Path(str(c.raw("run_dir"))), report=c.flag("report"), config=config)  # fmt: skip


def _number(value) -> float | None:
    """A finite real number, or None (bools, strings, nan and inf are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class _Checker:
    """Reads one flat config, checking each value's kind and range; messages name the key and the default."""

    def __init__(self, flat: dict):
        self.flat = flat

    def raw(self, key: str):
        return self.flat.get(key)

    def _fail(self, key: str, must: str):
        raise ConfigError(f"{key}={self.flat.get(key)} must be {must} (default: {key}={defaults().get(key)})")

    def whole(self, key: str, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.flat.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            if minimum == 1 and maximum is None:
                raise ConfigError(f"{key}={value} must be a positive whole number")
            self._fail(key, f"a whole number from {minimum}" + (f" to {maximum}" if maximum is not None else " up"))
        return value

    def number(self, key: str, low=None, above=None, high=None, below=None) -> float:
        value = _number(self.flat.get(key))
        bounds = [(low, ">=", lambda v, b: v >= b), (above, ">", lambda v, b: v > b),
                  (high, "<=", lambda v, b: v <= b), (below, "<", lambda v, b: v < b)]  # fmt: skip
        if value is None or not all(ok(value, b) for b, _, ok in bounds if b is not None):
            self._fail(key, "a number " + " and ".join(f"{op} {b:g}" for b, op, _ in bounds if b is not None))
        return value

    def flag(self, key: str) -> bool:
        value = self.flat.get(key)
        if not isinstance(value, bool):
            self._fail(key, "true or false")
        return value


def _accelerator(value) -> str:
    """trainer.accelerator, with auto resolved: cuda when there is a GPU, else cpu."""
    value = str(value).lower()
    if value not in ACCELERATORS:
        raise ConfigError(f"trainer.accelerator={value} is unknown; use {', '.join(ACCELERATORS)}")
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator=cuda, but torch finds no CUDA device here; use trainer.accelerator=cpu or auto"
        )
    if value == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            "trainer.accelerator=mps, but torch finds no MPS device here; use trainer.accelerator=cpu or auto"
        )
    return value


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The first CPU's flags in /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


@functools.cache
def cpu_name() -> str | None:
    """The CPU's model name from /proc/cpuinfo, e.g. 'AMD EPYC 9B14'; None where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX): there bf16 convolutions
    run at about twice the fp32 speed; elsewhere PyTorch emulates them, slower than fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def _precision(value, accelerator: str) -> str:
    """trainer.precision, with auto resolved: bf16-mixed where the hardware computes bf16 natively
    (any CUDA GPU this project targets; CPUs with AVX512-BF16 or AMX), else the paper's fp32."""
    precision = PRECISIONS.get(str(value).lower())
    if precision is None:
        raise ConfigError(f"trainer.precision={value} is unknown; use auto, 32-true (fp32, the paper's) or bf16-mixed")
    if precision == "16-mixed" and accelerator != "cuda":
        raise ConfigError(
            f"trainer.precision=16-mixed needs a CUDA GPU (this run is on {accelerator}); use bf16-mixed or 32-true"
        )
    if precision != "auto":
        return precision
    native = accelerator == "cuda" or (accelerator == "cpu" and cpu_has_native_bf16())
    return "bf16-mixed" if native else "32-true"


def _compile(value, accelerator: str, precision: str, steps: int) -> str:
    """trainer.compile, with auto resolved: compile runs of >= COMPILE_AUTO_MIN_STEPS steps, except
    bf16 on a CPU, where the compiled step measured no faster than the eager one (README, Performance).
    "false" for every spelling that leaves the model eager, "true" for torch.compile's default mode."""
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
    if accelerator == "cpu" and precision == "bf16-mixed":
        return "false"
    return "true" if steps >= COMPILE_AUTO_MIN_STEPS else "false"
