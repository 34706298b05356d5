"""One run: build data + model + module from its RunSpec, fit, and keep the run directory current.

`train(resolve(cfg))` is what `run.py` does for every job of a sweep; tests and the notebook
call it with a spec of their own (`config.compose` + `config.resolve`).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
import traceback
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from filelock import FileLock, Timeout
from omegaconf import OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from .allocator import keep_freed_memory
from .config import ConfigError, RunSpec
from .data import (
    DataError,
    EvalBatches,
    Split,
    TrainBatches,
    check_counts,
    data_fingerprint,
    load_cifar10,
    split_cifar10,
)
from .devices import gpu_slot, require_flock, use_float32_precision
from .loggers import build as build_loggers
from .loggers import finish as finish_loggers
from .machine import cpu_name
from .module import Classifier, limit_compile_workers
from .progress import progress_callbacks
from .results import check_metrics
from .runs import RunDir, RunFileError, WriteFault, flatten, status_text
from .stopping import CtrlC, say_stopped
from .trained_with import code_commit
from .trainer_settings import on_claimed_gpu

__all__ = ["ConfigError", "RunSpec", "build_module", "build_trainer", "train", "trained_with"]


def trained_with(spec: RunSpec, gpu: int = 0) -> dict:
    """How a run is computed, for the report's footers (trained_with.json): the same config trains in
    bf16 on one machine and fp32 on another, eager here and compiled there."""
    device = spec.trainer.accelerator
    hardware = {"gpu": torch.cuda.get_device_name(gpu)} if device == "cuda" else {"cpu": cpu_name() or "unknown"}
    return {
        "code": code_commit(),
        "precision": spec.trainer.precision,
        "device": device,
        **hardware,
        "compile": spec.trainer.compile,
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "torch": torch.__version__,
    }


class RunRecorder(pl.Callback):
    """At each log point: training error since the last one, val and test error, all to metrics.csv;
    then an atomic checkpoint. A resumed run continues from exactly this state.

    Everything a step changes (weights, optimizer, lr schedule, warm-up, the training-error
    counters) is in the checkpoint, and the data stream is a function of the step, so a run
    resumed from step k computes what an uninterrupted one computes after step k."""

    def __init__(self, run: RunDir, spec: RunSpec, val: EvalBatches | None, test: EvalBatches, ctrl_c: CtrlC):
        self.run, self.spec, self.val, self.test, self.ctrl_c = run, spec, val, test, ctrl_c
        self.rows: list[dict] = []
        self.started = time.monotonic()
        self.elapsed_before = 0.0
        self.diverged = False
        self.stopped_by: str | None = None  # the signal the run stopped on, once checkpointed
        self.snapshot_steps = {round(f * spec.steps) for f in spec.trainer.snapshots}

    def on_train_start(self, trainer, module):
        # The directory is bound to its config once training starts, not before: a run that fails
        # to start (a bad setting) leaves no config behind to refuse the corrected one.
        self.run.save_config(self.spec.config)
        for logger in trainer.loggers:  # logger=tensorboard: its HPARAMS tab shows the run's settings
            logger.log_hyperparams(flatten(self.spec.config))
        step = trainer.global_step  # restored from the checkpoint by now (it is still 0 in on_fit_start)
        self.rows = self.run.read_metrics(up_to_step=step)  # rows past the checkpoint are redone
        self.elapsed_before = float(self.rows[-1]["elapsed_s"]) if self.rows else 0.0
        self.started = time.monotonic()
        self.run.set_status("running", step=step, steps=self.spec.steps, pid=os.getpid())
        if step == 0:
            self.keep_snapshot(module, 0)
        self.ctrl_c.training = True  # from now on, Ctrl-C stops at the end of a step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        final = step >= self.spec.steps
        evaluate = step % self.spec.eval_every == 0 or final
        if evaluate or step % self.spec.log_every == 0:
            self.log_point(trainer, module, step, evaluate)
        if self.diverged:
            return
        self.keep_snapshot(module, step)
        # On SIGTERM (a Slurm preemption, `kill`) Lightning stops after this step; on Ctrl-C we do: keep it.
        stop = "SIGTERM" if trainer.received_sigterm else "SIGINT" if self.ctrl_c.pressed else None
        if step % self.spec.trainer.checkpoint_every == 0 or final or stop:
            self.run.write_checkpoint(lambda path: trainer.save_checkpoint(path, weights_only=False))
            if stop and not final:
                self.stopped_by = stop
                self.run.set_status("stopped", step=step, steps=self.spec.steps, signal=stop)
                trainer.should_stop = True  # Ctrl-C; on SIGTERM Lightning raises SIGTERMException next
            else:
                self.run.set_status("running", step=step, steps=self.spec.steps, pid=os.getpid())

    def keep_snapshot(self, module, step: int) -> None:
        """The weights at a snapshot step (trainer.snapshots), for measuring gradient flow over training.
        Written before the step's checkpoint: a run resumed from an earlier one recomputes the same weights."""
        if step in self.snapshot_steps:
            weights = {k: v.detach().cpu() for k, v in module.state_dict().items() if k.startswith("model.")}
            self.run.write_snapshot(step, weights)

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
            self.rows.append(
                {
                    "step": step,
                    "split": split,
                    "error": m["error"],
                    "loss": m["loss"],
                    "lr": module.lr_used,
                    "elapsed_s": round(elapsed, 2),
                }
            )
        self.run.write_metrics(self.rows)
        if trainer.loggers:  # the same numbers as metrics.csv, e.g. test/error, train/loss, lr
            metrics = {f"{split}/{k}": m[k] for split, m in results.items() for k in ("error", "loss")}
            for logger in trainer.loggers:
                logger.log_metrics({**metrics, "lr": module.lr_used}, step=step)
        module.progress.update({f"{split}_err": f"{m['error']:.3f}" for split, m in results.items()})
        if self.diverged:
            self.run.set_status(
                "diverged", step=step, steps=self.spec.steps, reason=f"training loss {results['train']['loss']}"
            )
            trainer.should_stop = True


def train(spec: RunSpec) -> str:
    """Train (or resume, or skip) the run `spec` describes; returns its final state. Stopped by SIGTERM or
    Ctrl-C, it keeps the step it is on (status "stopped") and exits 143 or 130 (SystemExit), saying so in a line."""
    run = RunDir(spec.run_dir)
    check_place(run)
    run.check_config(spec.config)
    if finished := _finished(run):
        return finished
    with CtrlC() as ctrl_c:
        try:
            state = _train(spec, run, ctrl_c)
        except SIGTERMException:
            # Lightning stopped at the end of a step, and the checkpoint holds that step. Exit as a
            # process killed by SIGTERM does: a scheduler or a shell must not take the run for finished.
            say_stopped(run, signal.SIGTERM)
        except (KeyboardInterrupt, SystemExit) as e:  # Lightning turns a KeyboardInterrupt into exit 1
            if isinstance(e, SystemExit) and not ctrl_c.pressed:
                raise
            say_stopped(run, signal.SIGINT)
    if state == "stopped":  # by Ctrl-C, at the end of a step
        say_stopped(run, signal.SIGINT)
    return state


def check_place(run: RunDir) -> None:
    """Refuse, before anything is read or made, a run whose folder cannot be: out_dir under a regular file."""
    for folder in (run.path, *run.path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise RunFileError(
                    f"{folder} is a file, not a folder, so {run.path} cannot be made; give out_dir= a folder "
                    f"(or move the file away)"
                )
            return


def _train(spec: RunSpec, run: RunDir, ctrl_c: CtrlC) -> str:
    made = [p for p in (run.path, *run.path.parents) if not p.exists()]  # the folders made for this run
    lock = FileLock(str(run.lock_file))
    try:
        run.path.mkdir(parents=True, exist_ok=True)
        require_flock(run.path, "the run directory")  # else a killed run's lock would outlive it (devices.py)
        lock.acquire(timeout=0)
    except ConfigError:
        _unmake(run, made)
        raise
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        # It may go on only if the holder says it trains these settings; else RunBusy/ConfigMismatch (exit 2).
        holder = run.check_holder(spec.config)
        print(
            f"[skip] {run.path}: another process (pid {holder['pid']} on {holder['host']}) is training these settings"
        )
        return "running"
    except OSError as e:  # a read-only out_dir, /proc, a full disk
        raise RunFileError(
            f"cannot make {run.path if made else run.lock_file} ({e.strerror or e}); out_dir must be a folder this "
            f"user can write, with free space: fix its permissions or give another out_dir="
        ) from None
    try:
        run.claim(spec.config)
        # Another process may have finished the run between the look above and the lock: look again.
        if finished := _finished(run):
            return finished
        with gpu_slot(spec.trainer) as gpu:  # None on a CPU; else the GPU this run has to itself (or shares k ways)
            return _fit(on_claimed_gpu(spec, gpu), run, gpu, ctrl_c)  # precision, compile: for that GPU
    except ConfigError:  # the data refused the run (or a setting that does not fit it): a new run leaves nothing
        if made:
            _unmake(run, made)
        raise
    finally:
        run.holder_file.unlink(missing_ok=True)
        lock.release()


def _unmake(run: RunDir, made: list[Path]) -> None:
    """Remove what was made for a run that was then refused (its lock and dataset.txt, and the folders made
    for it), while its lock is held; a folder something else has written into since is left."""
    for path in (run.holder_file, run.lock_file, run.dataset_file, run.data_file):
        path.unlink(missing_ok=True)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


def load_data(spec: RunSpec) -> Split:
    """The run's data, split; a DataError (the data, or a setting that does not fit it) is a ConfigError."""
    try:
        data = load_cifar10(spec.data.root, download=spec.data.download, cache_dir=spec.data.cache_dir)
        check_counts(data, spec.data.subset, spec.data.root)  # CIFAR-10's counts, or a subset that says so
        split = split_cifar10(data, spec.data.val_size, spec.data.split_seed)
        training_batches(spec, split, "cpu")  # checks that batch_size fits the data (on the CPU: no copy)
    except DataError as e:
        raise ConfigError(str(e)) from None
    split.fingerprint = data_fingerprint(data)
    return split


def _finished(run: RunDir) -> str | None:
    state = run.status().get("state")
    if state == "done":
        print(f"[skip] {run.path}: done")
    elif state == "diverged":
        print(f"[skip] {run.path}: diverged earlier (delete the directory to retry)")
    return state if state in ("done", "diverged") else None


def _fit(spec: RunSpec, run: RunDir, gpu: int | None, ctrl_c: CtrlC) -> str:
    # What a resume reads is checked before any work, and left as it is if it is broken.
    resume_step = run.check_resume(spec.steps, spec.log_every)
    # ... and its rows agree with its settings (one per step and split, at the steps it logs at): a duplicated
    # or lost row carried into a finished run would be refused by every report, after all its training
    check_metrics(run, OmegaConf.create(spec.config), {"state": "running"}, run.read_metrics())
    left = status_text(run.status())  # how it was left (stopped, killed, failed), for the start line
    run.remove_partial_writes()
    try:
        split = load_data(spec)
        counts = (len(split.train_labels) + len(split.val_labels), len(split.test_labels))
        run.record_data(split.source, split.fingerprint, spec.data.root, counts)  # or ConfigError: other data
        state = _fit_model(spec, run, split, resume_step, left, gpu, ctrl_c)
    except WriteFault as e:  # a full disk: said in status.json (the space the temporary file held is free again)
        run.remove_partial_writes()
        reason = str(e)
        try:
            _set_failed(run, reason)
            run.error_file.write_text(reason + "\n")
        except (OSError, RunFileError):  # the disk is still full: the one line on stderr says it
            pass
        raise
    except (ConfigError, RunFileError):  # refused in one line, the run directory as it was
        raise
    except Exception:
        run.error_file.write_text(traceback.format_exc())
        run.set_status("failed", error=traceback.format_exc(limit=1).strip().splitlines()[-1])
        raise
    return state


def _set_failed(run: RunDir, reason: str) -> None:
    """status.json says failed, at the step of its last good checkpoint (what a resume starts from)."""
    step = run.status().get("step")
    run.set_status("failed", **({"step": step} if isinstance(step, int) else {}), error=reason)


def build_module(spec: RunSpec) -> Classifier:
    """The network and its LightningModule as a run trains them (bench.py times this same object)."""
    optim, warmup = spec.optim, spec.warmup
    return Classifier(
        spec.net.build(),
        steps=spec.steps,
        lr=optim.lr,
        momentum=optim.momentum,
        weight_decay=optim.weight_decay,
        lr_milestones=list(optim.lr_milestones),
        lr_decay=optim.lr_decay,
        warmup=warmup.enabled,
        warmup_lr=warmup.lr,
        warmup_until_train_error=warmup.until_train_error,
        warmup_check_every=warmup.check_every,
        channels_last=spec.trainer.channels_last,
        compile=spec.trainer.compile,
        accelerator=spec.trainer.accelerator,  # MPS counts in float32 (module.py)
    )


def training_batches(spec: RunSpec, split, device, start_step=None) -> TrainBatches:
    """The run's stream of augmented training batches on `device` (bench.py times this same stream);
    `start_step` says where a resumed run is, so the stream continues exactly."""
    return TrainBatches(
        split.train_images,
        split.train_labels,
        split.mean_image,
        spec.batch_size,
        spec.seed,
        start_step=start_step or (lambda: 0),
        device=device,
        channels_last=spec.trainer.channels_last,
    )


def build_trainer(spec: RunSpec, root_dir, callbacks: list | None = None, device: int | None = None) -> pl.Trainer:
    """The Trainer a run uses (bench.py times this same setup); `callbacks` come after the progress bar.
    `device`: the index of the GPU to use (devices.py claims it), None for the accelerator's first."""
    settings = spec.trainer
    progress = progress_callbacks(settings.progress_bar)
    if settings.threads:  # CPU threads of PyTorch's ops (speed only); unset: torch's default, one per core
        torch.set_num_threads(settings.threads)
    if settings.keep_freed_memory:  # process-wide, for good: where memory comes from, not what is computed
        keep_freed_memory()
    use_float32_precision(settings.precision)  # 32-true is fp32 on a GPU too: no TF32
    # the `logger` group (loggers.py; checked when resolved: the packages are there); none: metrics.csv only
    logger = build_loggers(spec.config.get("logger"), Path(root_dir), spec.run_id) or False
    return pl.Trainer(
        accelerator=settings.accelerator,
        devices=1 if device is None else [device],
        precision=settings.precision,
        max_steps=spec.steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=settings.progress_bar == "bar",
        # "warn", not True: Lightning's True makes torch raise at the first op without a deterministic
        # kernel on CUDA; False also undoes an earlier run's setting in the same process.
        deterministic="warn" if settings.deterministic else False,
        benchmark=settings.cudnn_benchmark and not settings.deterministic,
        default_root_dir=str(root_dir),
        callbacks=[*progress, *(callbacks or [])],
        plugins=_cluster_environment(),
    )


def _cluster_environment() -> list:
    """Under Slurm, Lightning's Slurm environment without its own requeue on SIGUSR1: submitit's jobs
    requeue on USR2 (conf/hydra/launcher/slurm.yaml), and the run resumes from its checkpoint either way;
    two requeue mechanisms in one job could queue it twice."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def _fit_model(
    spec: RunSpec, run: RunDir, split: Split, resume_step: int | None, left: str, gpu: int | None, ctrl_c: CtrlC
) -> str:
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    module = build_module(spec)
    # Lightning's info banner (GPU/TPU available, a logging tip) for every run of a sweep says nothing the
    # start line below does not; its warnings still show.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    trainer = build_trainer(spec, run.path, device=gpu)
    device = trainer.strategy.root_device
    if spec.trainer.compiled:
        limit_compile_workers(device.type == "cuda", spec.trainer.runs_per_gpu)
    channels_last = spec.trainer.channels_last
    train_batches = training_batches(spec, split, device, start_step=lambda: trainer.global_step)
    eval_args = {
        "mean_image": split.mean_image,
        "batch_size": spec.trainer.eval_batch_size,
        "device": device,
        "channels_last": channels_last,
    }
    val = EvalBatches(split.val_images, split.val_labels, **eval_args) if len(split.val_labels) else None
    test = EvalBatches(split.test_images, split.test_labels, **eval_args)
    run.record_environment(trained_with(spec, gpu or 0))
    recorder = RunRecorder(run, spec, val, test, ctrl_c)
    trainer.callbacks.append(recorder)
    how = f"on {device}, {spec.trainer.precision}, {'compiled' if spec.trainer.compiled else 'eager'} ({split.source})"
    if resume_step is None:
        print(f"[start] {run.path} {how}")
    else:  # how it was left: stopped (SIGTERM, Ctrl-C), killed (its process gone), failed
        print(f"[resume] {run.path} at step {resume_step} ({left}) {how}")
    resume = None if resume_step is None else str(run.checkpoint)
    with warnings.catch_warnings():
        # pytorch_lightning 2.6 calls a torch API that torch 2.14 deprecates, once per run: it says nothing
        # to the user of a run (their code does not call it), so it is not shown in every run's output.
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        try:
            trainer.fit(module, train_dataloaders=train_batches, ckpt_path=resume)
        finally:
            finish_loggers(trainer.loggers)
    if recorder.diverged:
        return "diverged"
    if recorder.stopped_by:
        return "stopped"
    if trainer.global_step < spec.steps:  # not expected: Lightning raises when it is interrupted
        raise RuntimeError(f"training stopped at step {trainer.global_step} of {spec.steps}; run it again to resume")
    # Done is said here, once the final checkpoint is in place; a run killed between the two
    # resumes at its last step, trains nothing, and is said done now.
    run.set_status("done", step=trainer.global_step, steps=spec.steps)
    return "done"
