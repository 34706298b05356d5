"""The project's two timed paths, and how every path is timed.

  (a) ProjectPath  what `train.py` runs: build_module + build_trainer + TrainBatches through
                   trainer.fit, so every speed switch in conf/config.yaml applies
  (b) BareLoop     the same module, optimizer, schedule and TrainBatches in a plain PyTorch loop

A harness has `path` (its TimedPath) and `measure(warmup, steps)`: images per second between the
end of step `warmup` and the end of step `warmup + steps`, data loading included. The reference
(c) is in reference.py; `rotation` is the order they run in. A variant of (a) that changes a
process-wide setting runs in a process of its own (project_process).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from resnet_repro.config import RunSpec, compose, resolve
from resnet_repro.data import Split, load_cifar10, split_cifar10
from resnet_repro.train import build_module, build_trainer, training_batches

from .paths import BARE_LOOP, PROJECT, TimedPath
from .process import PathProcess, serve
from .reference import sync

DATA = "bench::data"  # the profiler's name for cutting and augmenting a batch (the bare loop's next())


def generated_split(n_train: int = 45000, seed: int = 0) -> Split:
    """Random images in CIFAR-10's shape: every path's cost is independent of the pixel values."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n_train,), generator=g)
    empty = images[:0]
    return Split(images, labels, empty, labels[:0], empty, labels[:0], images.float().mean(0) / 255, "generated images")


def run_spec(overrides: list[str]) -> RunSpec:
    """The run these overrides describe, as run.py would resolve it (the data is the benchmark's own)."""
    return resolve(compose(overrides), check_data=False)


def rotation(harnesses: list, repeat: int) -> list:
    """The harnesses in the order of this repeat: each repeat starts one further along, so a change in
    the machine's load hits every path alike."""
    k = repeat % len(harnesses)
    return harnesses[k:] + harnesses[:k]


def resolved_device(spec: RunSpec) -> torch.device:
    return torch.device(spec.trainer.accelerator)


@contextlib.contextmanager
def quiet():
    """Hide Lightning's banner and the progress bar's output (the bar still runs: it is part of the path)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class _Clock(pl.Callback):
    """Stamps the end of step `warmup` and of step `warmup + steps` (one device sync at each, none between),
    then stops the run: the config keeps its real length, so its schedule and compile=auto act as in a run."""

    def __init__(self, warmup: int, steps: int, device: torch.device):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.start = self.end = None

    def on_train_batch_end(self, trainer, *_):
        if trainer.global_step in (self.warmup, self.warmup + self.steps):
            sync(self.device)
            if trainer.global_step == self.warmup:
                self.start = time.perf_counter()
            else:
                self.end = time.perf_counter()
                trainer.should_stop = True


class ProjectPath:
    """(a) What `train.py` runs: build_module + build_trainer + TrainBatches, through trainer.fit."""

    def __init__(self, spec: RunSpec, split: Split, root_dir: Path, path: TimedPath = PROJECT):
        self.spec, self.split, self.root_dir, self.path = spec, split, root_dir, path
        self.module = build_module(spec)  # kept across repeats: a compiled model compiles once

    def measure(self, warmup: int, steps: int) -> float:
        spec, split = self.spec, self.split
        clock = _Clock(warmup, steps, resolved_device(spec))
        threads = torch.get_num_threads()
        trainer = build_trainer(spec, self.root_dir, callbacks=[clock])
        batches = training_batches(spec, split, trainer.strategy.root_device, start_step=lambda: trainer.global_step)
        try:
            with quiet():
                trainer.fit(self.module, train_dataloaders=batches)
        finally:
            torch.set_num_threads(threads)  # trainer.threads of a variant must not leak into the next path
        return steps * spec.batch_size / (clock.end - clock.start)


class BareLoop:
    """(b) The same module (model, compile, memory format), optimizer, lr schedule and TrainBatches, no Lightning."""

    path = BARE_LOOP

    def __init__(self, spec: RunSpec, split: Split, module: pl.LightningModule):
        self.spec, self.split, self.module = spec, split, module
        self.device = resolved_device(spec)
        mode = spec.trainer.precision
        if mode not in ("32-true", "bf16-mixed"):
            raise ValueError(f"the bare loop knows precision 32-true and bf16-mixed, not {mode}")
        self.autocast = mode == "bf16-mixed"

    def start(self) -> Callable[[], None]:
        """A fresh optimizer, schedule and batch stream; returns one training step of them. Cutting and
        augmenting the batch is recorded as DATA for the profiler (profile.py); unprofiled, that costs a few us."""
        module = self.module.to(self.device).train()
        configured = module.configure_optimizers()
        optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
        batches = iter(training_batches(self.spec, self.split, self.device))

        def step() -> None:
            with record_function(DATA):
                images, labels = next(batches)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss = F.cross_entropy(module(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()

        return step

    def measure(self, warmup: int, steps: int) -> float:
        step = self.start()
        for _ in range(warmup):
            step()
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(self.device)
        return steps * self.spec.batch_size / (time.perf_counter() - start)


def process_wide_change(spec: RunSpec, base: RunSpec) -> bool:
    """Whether `spec` differs from `base` in a setting that holds for a whole process once a run sets it."""
    return spec.trainer.keep_freed_memory != base.trainer.keep_freed_memory


def training_split(data_root: str | None, spec: RunSpec) -> Split:
    """The images every path trains on: CIFAR-10 from `data_root` (any layout data.py reads), or generated."""
    if not data_root:
        return generated_split()
    data = load_cifar10(data_root, cache_dir=spec.data.cache_dir)
    return split_cifar10(data, spec.data.val_size, spec.data.split_seed)


def project_process(overrides: list[str], data_root: str | None, path: TimedPath) -> PathProcess:
    """(a) with `overrides` (the benchmark's whole list), in a process of its own (process.py)."""
    code = "from benchmarks.throughput.harness import serve_project; serve_project()"
    return PathProcess(path, code, [json.dumps(overrides), data_root or ""], dict(os.environ))


def serve_project() -> None:
    """The child side of project_process: argv = the overrides (JSON), the data root ("" = generated)."""
    spec = run_spec(json.loads(sys.argv[1]))
    split = training_split(sys.argv[2], spec)
    with tempfile.TemporaryDirectory(prefix="resnet-bench-") as tmp:
        serve(ProjectPath(spec, split, Path(tmp)))
