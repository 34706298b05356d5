"""A run's resolved description (`config.resolve` makes it): frozen, typed, every `auto` decided.

Training, the module, the Trainer, the benchmark, the plan and the sweeps read a RunSpec, never the
raw config. What a setting means, and its default, is in resnet_repro/conf/config.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError  # noqa: F401 (its old import path, resnet_repro.spec.ConfigError)
from .models import Net


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
    subset: str | None = None  # data.subset: a deliberate subset's name; None = the full 50,000 + 10,000 images


@dataclass(frozen=True)
class TrainerSettings:
    """How and where the run computes (may change on resume); every `auto` resolved for this machine.
    Which GPU of several a run uses is not here: it is claimed when the run starts (devices.py)."""

    accelerator: str  # cpu | cuda | mps (trainer.accelerator=gpu is cuda)
    precision: str  # 32-true | bf16-mixed | 16-mixed
    compile: str  # "false" (eager) | "true" (torch.compile's default mode) | a torch.compile mode
    channels_last: bool
    threads: int | None  # CPU threads of PyTorch's ops; None = torch's default
    keep_freed_memory: bool  # keep freed CPU memory in the process (allocator.py)
    cudnn_benchmark: bool
    deterministic: bool
    eval_batch_size: int
    checkpoint_every: int
    snapshots: tuple[float, ...]  # fractions of steps at which the weights are kept (snapshots/step-<k>.pt)
    progress_bar: str  # "bar" (a live bar) | "lines" (a line every 10%, for job logs) | "off"
    runs_per_gpu: int  # runs sharing one GPU at once

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
