"""One run: check the config, build data + model + module, fit, and keep the run directory current.

`train(cfg)` is what `run.py` calls for every job of a sweep; tests and the
notebook call it directly with a composed config.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import time
import traceback
from pathlib import Path

import pytorch_lightning as pl
import torch
from filelock import FileLock, Timeout
from omegaconf import DictConfig
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.utilities.exceptions import SIGTERMException

from .data import DataError, EvalBatches, TrainBatches, detect_layout, load_cifar10, missing_data_message, split_cifar10
from .models import blocks_per_stage, build_model, resolve_shortcut
from .module import EAGER, Classifier
from .runs import RunDir, atomic_write, code_commit


class ConfigError(ValueError):
    """A bad setting, found before any work starts; the message names the fix."""


def check_config(cfg: DictConfig) -> None:
    """Every setting a run depends on, checked up front: one line per problem, naming the fix."""
    try:
        resolve_shortcut(cfg.arch, cfg.shortcut)
        blocks_per_stage(cfg.depth)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    positive = {"steps": cfg.steps, "batch_size": cfg.batch_size, "eval_every": cfg.eval_every, "log_every": cfg.log_every,
                "trainer.checkpoint_every": cfg.trainer.checkpoint_every, "trainer.eval_batch_size": cfg.trainer.eval_batch_size}  # fmt: skip
    for key, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key}={value} must be a positive whole number")
    if cfg.eval_every > cfg.steps:
        raise ConfigError(f"eval_every={cfg.eval_every} is larger than steps={cfg.steps}; set eval_every <= steps")
    if cfg.log_every > cfg.eval_every:
        raise ConfigError(f"log_every={cfg.log_every} is larger than eval_every={cfg.eval_every}; set log_every <= eval_every")
    if cfg.warmup.enabled not in ("auto", True, False):
        raise ConfigError(f"warmup.enabled={cfg.warmup.enabled} must be auto, true or false")
    root = Path(str(cfg.data.root)).expanduser()
    if detect_layout(root) is None and not cfg.data.download:
        raise ConfigError(missing_data_message(root))


def warmup_on(cfg: DictConfig) -> bool:
    return cfg.depth >= 110 if cfg.warmup.enabled == "auto" else bool(cfg.warmup.enabled)


def accelerator(cfg: DictConfig) -> str:
    """trainer.accelerator, with auto resolved: cuda when there is a GPU, else cpu."""
    if cfg.trainer.accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(cfg.trainer.accelerator)


@functools.cache  # a fact of the machine, asked by every precision() call
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX): there bf16 convolutions
    run at about twice the fp32 speed; elsewhere PyTorch emulates them, slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no way to tell here, so the safe choice
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision(cfg: DictConfig) -> str:
    """trainer.precision, with auto resolved: bf16-mixed where the hardware computes bf16 natively
    (any CUDA GPU this project targets; CPUs with AVX512-BF16 or AMX), else the paper's fp32."""
    if cfg.trainer.precision != "auto":
        return str(cfg.trainer.precision)
    device = accelerator(cfg)
    native = device == "cuda" or (device == "cpu" and cpu_has_native_bf16())
    return "bf16-mixed" if native else "32-true"


# Runs shorter than this stay eager under compile=auto: compiling costs 1-3 minutes on the 2-core
# CPU and the compiled fp32 step is 6-11% faster there, so it pays back after a few thousand steps.
COMPILE_AUTO_MIN_STEPS = 5000


def compile_setting(cfg: DictConfig) -> str:
    """trainer.compile, with auto resolved: compile runs of >= COMPILE_AUTO_MIN_STEPS steps, except
    bf16 on a CPU, where the compiled step measured no faster than the eager one (README, Performance).
    "false" for every value that leaves the model eager (module.EAGER), so callers compare with it alone."""
    value = str(cfg.trainer.compile).lower()
    if value in EAGER:
        return "false"
    if value != "auto":
        return value
    if accelerator(cfg) == "cpu" and precision(cfg) == "bf16-mixed":
        return "false"
    return "true" if cfg.steps >= COMPILE_AUTO_MIN_STEPS else "false"


class StepProgressBar(TQDMProgressBar):
    """One bar over the whole run in iterations (the stream is endless, so Lightning's epoch bar has no total)."""

    def on_train_epoch_start(self, trainer, *_):
        super().on_train_epoch_start(trainer)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.initial = trainer.global_step
        bar.set_description("/".join(Path(trainer.default_root_dir).parts[-2:]))  # e.g. plain-56/seed0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n = trainer.global_step
        if self._should_update(n, trainer.max_steps):
            self.train_progress_bar.n = n
            self.train_progress_bar.set_postfix(pl_module.progress, refresh=True)


class RunRecorder(pl.Callback):
    """At each log point: training error since the last one, val and test error, all to metrics.csv;
    then an atomic checkpoint. A resumed run continues from exactly this state.

    Everything a step changes (weights, optimizer, lr schedule, warm-up, the training-error
    counters) is in the checkpoint, and the data stream is a function of the step, so a run
    resumed from step k computes what an uninterrupted one computes after step k."""

    def __init__(self, run: RunDir, cfg: DictConfig, val: EvalBatches | None, test: EvalBatches):
        self.run, self.cfg, self.val, self.test = run, cfg, val, test
        self.rows: list[dict] = []
        self.started = time.monotonic()
        self.elapsed_before = 0.0
        self.diverged = False

    def on_train_start(self, trainer, module):
        # The directory is bound to its config once training starts, not before: a run that fails
        # to start (a bad setting) leaves no config behind to refuse the corrected one.
        self.run.save_config(self.cfg)
        step = trainer.global_step  # restored from the checkpoint by now (it is still 0 in on_fit_start)
        self.rows = self.run.read_metrics(up_to_step=step)  # rows past the checkpoint are redone
        self.elapsed_before = float(self.rows[-1]["elapsed_s"]) if self.rows else 0.0
        self.started = time.monotonic()
        self.run.set_status("running", step=step, steps=self.cfg.steps, pid=os.getpid())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        final = step >= self.cfg.steps
        evaluate = step % self.cfg.eval_every == 0 or final
        if evaluate or step % self.cfg.log_every == 0:
            self.log_point(trainer, module, step, evaluate)
        if self.diverged:
            return
        # On SIGTERM (a Slurm preemption, `kill`) Lightning stops after this step: keep it.
        if step % self.cfg.trainer.checkpoint_every == 0 or final or trainer.received_sigterm:
            self.run.write_checkpoint(lambda path: trainer.save_checkpoint(path, weights_only=False))
            self.run.set_status("running", step=step, steps=self.cfg.steps, pid=os.getpid())

    def log_point(self, trainer, module, step, evaluate: bool):
        elapsed = self.elapsed_before + time.monotonic() - self.started
        results = {"train": module.pop_train_metrics()}
        if not math.isfinite(results["train"]["loss"]):
            self.diverged = True
        elif evaluate:
            if self.val is not None:
                results["val"] = module.evaluate(self.val)
            results["test"] = module.evaluate(self.test)
        for split, m in results.items():
            self.rows.append({"step": step, "split": split, "error": m["error"], "loss": m["loss"],
                              "lr": module.lr_used, "elapsed_s": round(elapsed, 2)})  # fmt: skip
        self.run.write_metrics(self.rows)
        module.progress.update({f"{split}_err": f"{m['error']:.3f}" for split, m in results.items()})
        if self.diverged:
            self.run.set_status("diverged", step=step, steps=self.cfg.steps, reason=f"training loss {results['train']['loss']}")
            trainer.should_stop = True


def train(cfg: DictConfig) -> str:
    """Train (or resume, or skip) the run `cfg` describes; returns its final state."""
    check_config(cfg)
    run = RunDir(cfg.run_dir)
    run.check_config(cfg)
    if finished := _finished(run):
        return finished
    run.path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run.lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"[skip] {run.path}: another process is training it")
        return "running"
    try:
        # Another process may have finished the run between the look above and the lock: look again.
        return _finished(run) or _fit(cfg, run)
    finally:
        lock.release()


def _finished(run: RunDir) -> str | None:
    state = run.status().get("state")
    if state == "done":
        print(f"[skip] {run.path}: done")
    elif state == "diverged":
        print(f"[skip] {run.path}: diverged earlier (delete the directory to retry)")
    return state if state in ("done", "diverged") else None


def _fit(cfg: DictConfig, run: RunDir) -> str:
    # What a resume reads is checked before any work, and left as it is if it is broken.
    run.read_metrics()
    resume = run.checkpoint if run.checkpoint.is_file() else None
    if resume:
        run.check_checkpoint()
    run.remove_partial_writes()
    try:
        data = load_cifar10(cfg.data.root, download=cfg.data.download, cache_dir=cfg.data.cache_dir)
        split = split_cifar10(data, cfg.data.val_size, cfg.data.split_seed)
        atomic_write(run.dataset_file, split.source + "\n")  # what the data was, for the report's figures
        return _fit_model(cfg, run, split, resume)
    except DataError as e:  # the data, or a setting that does not fit it (batch_size): bad input, when found
        raise ConfigError(str(e)) from None
    except SIGTERMException:
        # Lightning stopped at the end of a step, and the checkpoint holds that step. Exit as a
        # process killed by SIGTERM does: a scheduler or a shell must not take the run for finished.
        print(f"[stopped] {run.path} at step {run.status().get('step')}: run the same command to resume")
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception:
        run.error_file.write_text(traceback.format_exc())
        run.set_status("failed", error=traceback.format_exc(limit=1).strip().splitlines()[-1])
        raise


def build_module(cfg: DictConfig) -> Classifier:
    """The network and its LightningModule as a run trains them (bench.py times this same object)."""
    model = build_model(cfg.arch, cfg.depth, cfg.shortcut)
    return Classifier(
        model, steps=cfg.steps, **cfg.optim, warmup=warmup_on(cfg), warmup_lr=cfg.warmup.lr,
        warmup_until_train_error=cfg.warmup.until_train_error, warmup_check_every=cfg.warmup.check_every,
        channels_last=cfg.trainer.channels_last, compile=compile_setting(cfg),
    )  # fmt: skip


def build_trainer(cfg: DictConfig, root_dir, callbacks: list | None = None) -> pl.Trainer:
    """The Trainer a run uses (bench.py times this same setup); `callbacks` come after the progress bar."""
    progress = [StepProgressBar(refresh_rate=10)] if cfg.trainer.progress_bar else []
    if cfg.trainer.get("threads"):  # CPU threads of PyTorch's ops (speed only); unset: torch's default, one per core
        torch.set_num_threads(int(cfg.trainer.threads))
    return pl.Trainer(
        accelerator=accelerator(cfg), devices=1, precision=precision(cfg), max_steps=cfg.steps,
        max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_model_summary=False, enable_progress_bar=bool(progress), deterministic=cfg.trainer.deterministic,
        benchmark=bool(cfg.trainer.get("cudnn_benchmark", True)) and not cfg.trainer.deterministic,
        default_root_dir=str(root_dir), callbacks=[*progress, *(callbacks or [])],
    )  # fmt: skip


def _fit_model(cfg, run, split, resume) -> str:
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    if cfg.trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    module = build_module(cfg)
    # Lightning's info banner (GPU/TPU available, a logging tip) for every run of a sweep says nothing the
    # start line below does not; its warnings still show.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    trainer = build_trainer(cfg, run.path)
    device = trainer.strategy.root_device
    channels_last = cfg.trainer.channels_last
    train_batches = TrainBatches(split.train_images, split.train_labels, split.mean_image, cfg.batch_size,
                                 cfg.seed, start_step=lambda: trainer.global_step, device=device, channels_last=channels_last)  # fmt: skip
    eval_args = dict(mean_image=split.mean_image, batch_size=cfg.trainer.eval_batch_size, device=device, channels_last=channels_last)
    val = EvalBatches(split.val_images, split.val_labels, **eval_args) if len(split.val_labels) else None
    test = EvalBatches(split.test_images, split.test_labels, **eval_args)
    # How it was computed, for the report's footers: the same config trains in bf16 on one machine, fp32 on another.
    run.record_environment(f"code {code_commit()}, {precision(cfg)} on {device.type}, torch {torch.__version__}")
    recorder = RunRecorder(run, cfg, val, test)
    trainer.callbacks.append(recorder)
    print(f"[{'resume' if resume else 'start'}] {run.path} on {device}, {precision(cfg)}, "
          f"{'compiled' if compile_setting(cfg) != 'false' else 'eager'} ({split.source})")
    trainer.fit(module, train_dataloaders=train_batches, ckpt_path=str(resume) if resume else None)
    if recorder.diverged:
        return "diverged"
    if trainer.global_step < cfg.steps:  # not expected: Lightning raises when it is interrupted
        raise RuntimeError(f"training stopped at step {trainer.global_step} of {cfg.steps}; run it again to resume")
    # Done is said here, once the final checkpoint is in place; a run killed between the two
    # resumes at its last step, trains nothing, and is said done now.
    run.set_status("done", step=trainer.global_step, steps=cfg.steps)
    return "done"
