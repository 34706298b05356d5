"""Run directories: where a run lives, what state it is in, and safe writes.

A run's directory is a function of its config (`<out_dir>/<name>/<arch>-<depth>[-<shortcut>]/seed<k>`),
so re-running a sweep finds its own runs. Each holds:

    config.yaml   the resolved config it was made with
    status.json   {"state": running | stopped | done | failed | diverged, "step": ..., "pid", "host", ...}:
                  running (with the pid and host of its process: `status_text` tells a killed run, whose
                  process is gone, from a live one), stopped (by SIGTERM or Ctrl-C, checkpointed at "step")
    metrics.csv   one row per (step, split): error, loss, lr, elapsed seconds
    last.ckpt     the latest checkpoint (written atomically)
    weights.pt    a finished run's final network weights alone (what a collected run keeps of last.ckpt)
    snapshots/    step-<k>.pt: the weights at the fractions of the schedule in trainer.snapshots (weights.pt's
                  layout plus the step), for measuring how gradients flow as the net trains
    error.txt     the traceback, when a run failed
    dataset.txt   what it trained on, e.g. "CIFAR-10 (JPEG q75 copy)"; written once, at the start
    data.json     the data it started on: {"fingerprint" (of the images and labels, data.data_fingerprint),
                  "source", "train_images", "test_images", "root"}; a resume on other data is refused
    trained_with.json  how it was computed: one entry per distinct environment it trained in (a resume
                  may move it), {"code": commit, "precision", "device", "compile", "threads", "torch", "cpu" or "gpu"}.
                  Runs made before it have trained_with.txt instead (one prose line per environment),
                  which is still read.

Every file is written whole to a temporary name and renamed into place, so a
crash or a concurrent reader never sees half a file. A file that cannot be read
is never deleted or overwritten: the run stops with a one-line error naming the fix.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .models import net_name, resolve_block, resolve_shortcut
from .spec import ConfigError
from .trained_with import parse_environment_text

STATES = ("running", "stopped", "done", "failed", "diverged")
METRIC_COLUMNS = ("step", "split", "error", "loss", "lr", "elapsed_s")

# The config names a run's directory through this resolver: run_id: ${run_name:${arch},${depth},${shortcut},${block}}/seed${seed}
OmegaConf.register_new_resolver("run_name", net_name, replace=True)

# ---- which settings define a run: the one rule, for resume (RunDir.check_config) and the report alike
# Keys that say how or where a run executes, not what it learns: they may change on resume.
RUNTIME_KEYS = (
    "data.root",
    "data.download",
    "data.cache_dir",
    "trainer",
    "out_dir",
    "name",
    "run_id",
    "run_dir",
    "report",
    "logger",  # loggers besides metrics.csv: how a run is watched, not what it learns
)


def run_settings(cfg: DictConfig | dict) -> dict:
    """What defines a run, flat ({"optim.lr": 0.1, ...}): its config without the runtime keys, the
    shortcut resolved (unset and the arch's own are one net), a key set to null left out (null means what
    the key's absence means: a run made before the key existed, e.g. data.subset, is one with a run that
    has it null). Two configs with equal settings are one run (a resume may change the rest); runs whose
    settings differ only in `seed` are repeats of one configuration (`configuration`)."""
    if isinstance(cfg, DictConfig):  # conf/config.yaml itself has both; a run's config has neither
        cfg = OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, [k for k in cfg if k not in ("defaults", "hydra")]), resolve=True
        )
    flat = flatten({k: v for k, v in cfg.items() if k not in ("defaults", "hydra")})
    settings = {k: v for k, v in flat.items() if not any(k == r or k.startswith(r + ".") for r in RUNTIME_KEYS)}
    try:
        settings["shortcut"] = resolve_shortcut(settings.get("arch"), settings.get("shortcut"))
        settings["block"] = resolve_block(settings.get("block"))  # runs made before the key existed: basic
    except ValueError:  # a refused setting: compared as it was written
        pass
    return {k: v for k, v in settings.items() if v is not None}


def claimed_data_root(cfg: DictConfig | dict) -> str | None:
    """The data a run's process trains on, as its lock's claim names it: data.root made absolute (links
    resolved), so that two spellings of one path agree; None where the config names none."""
    root = (cfg.get("data") or {}).get("root")
    return None if root is None else str(Path(str(root)).expanduser().resolve())


def configuration(settings: dict) -> dict:
    """The settings of a run without its seed: what the runs drawn as one curve share."""
    return {k: v for k, v in settings.items() if k != "seed"}


def settings_diff(old: dict, new: dict) -> str:
    """The first settings two runs differ in, as "key: old -> new, ..." (empty when they are one run)."""
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in changed[:4])


class ConfigMismatch(ValueError):
    """An existing run directory was made with another config."""


class RunFileError(ValueError):
    """A file in a run directory cannot be read; the message names the fix."""


class WriteFault(RunFileError):
    """A run's file could not be written (a full disk, a read-only or vanished folder); nothing half-written is left."""


class RunBusy(RunFileError):
    """Another process holds the run's lock, and it cannot be shown to train the same settings."""


def _temporary(path: Path) -> Path:
    """Where `path` is written before it is renamed into place (see `remove_partial_writes`)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _replace(tmp: Path, path: Path) -> None:
    """Make `tmp` durable, then put it in place of `path` in one step: a reader sees the old file or the new one."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write(path: Path, text: str) -> None:
    tmp = _temporary(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        _replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise write_fault(path, e) from None


def write_fault(path: Path, error: BaseException) -> WriteFault:
    reason = getattr(error, "strerror", None) or _first_line(error)
    return WriteFault(
        f"cannot write {path} ({reason}); free space on its disk (or make it writable) and run the same command "
        f"again: it resumes from the last checkpoint"
    )


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def flatten(d: dict, prefix: str = "") -> dict:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}"""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def process_alive(pid, host) -> bool | None:
    """Whether process `pid` on `host` still runs; None where this machine cannot tell (another host, no pid).
    A pid the system has since given to another process reads as alive: a reader may call a killed run
    running, never the other way round."""
    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def status_text(status: dict) -> str:
    """A run's status.json in words, telling a run whose process was killed from one still running:
    "running at step 40 (pid 123 on node1)", "killed at step 40 (its process, pid 123 on node1, is gone)",
    "stopped at step 40 by SIGINT", "failed at step 40 (ValueError: ...)", "new" without a status."""
    state = status.get("state", "new")
    at = f" at step {status['step']}" if isinstance(status.get("step"), int) else ""
    if state == "running":
        process = f"pid {status.get('pid', '?')} on {status.get('host', '?')}"
        alive = process_alive(status.get("pid"), status.get("host"))
        if alive is False:
            return f"killed{at} (its process, {process}, is gone)"
        return f"running{at} ({process}{'' if alive else '; another machine: cannot tell whether it still runs'})"
    if state == "stopped":
        return f"stopped{at} by {status.get('signal', 'a signal')}"
    reason = status.get("reason") or status.get("error")
    return f"{state}{at}" + (f" ({reason})" if reason else "")


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.status_file = self.path / "status.json"
        self.metrics_file = self.path / "metrics.csv"
        self.checkpoint = self.path / "last.ckpt"
        self.weights_file = self.path / "weights.pt"
        self.error_file = self.path / "error.txt"
        self.dataset_file = self.path / "dataset.txt"
        self.trained_with_file = self.path / "trained_with.json"
        self.trained_with_text_file = self.path / "trained_with.txt"  # written by runs made before trained_with.json
        self.data_file = self.path / "data.json"
        self.lock_file = self.path / ".lock"
        self.snapshots_dir = self.path / "snapshots"
        self.holder_file = self.path / ".lock.json"  # who holds the lock, training which settings

    # ---- the data it trains on
    def record_data(self, source: str, fingerprint: str, root, counts: tuple[int, int] | None = None) -> None:
        """Record the data a run starts on (data.json, dataset.txt), or refuse (ConfigError) data other than
        the data it started on: a run resumed on another data set would report one run's errors for two."""
        try:
            recorded = json.loads(self.data_file.read_text())
        except FileNotFoundError:
            recorded = None
        except (OSError, ValueError) as e:
            raise RunFileError(
                f"unreadable {self.data_file} ({_first_line(e)}); restore it, or delete it to resume without "
                f"checking the data"
            ) from None
        try:
            old_source = self.dataset_file.read_text().strip()
        except FileNotFoundError:
            old_source = None
        except (OSError, ValueError) as e:
            raise RunFileError(f"unreadable {self.dataset_file} ({_first_line(e)}); restore it, or delete it") from None
        fix = f"resume it with the data it started on, or delete {self.path} to retrain it on this data"
        if recorded is not None and not (isinstance(recorded, dict) and isinstance(recorded.get("fingerprint"), str)):
            raise RunFileError(  # a record without its fingerprint cannot tell this data from other data
                f"{self.data_file} is not a record of the data the run started on (no fingerprint in it); restore "
                f"it, or delete it to resume without checking the data"
            )
        if recorded is not None and recorded.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"{self.path} started on other data ({recorded.get('source')} from {recorded.get('root')}, "
                f"fingerprint {recorded.get('fingerprint')}) than data.root={root} holds ({source}, fingerprint "
                f"{fingerprint}); {fix}"
            )
        if old_source is not None and old_source != source:
            raise ConfigError(
                f"{self.path} trained on {old_source} (its dataset.txt), but data.root={root} holds {source}; {fix}"
            )
        if recorded is None:
            record = {"fingerprint": fingerprint, "source": source, "root": str(root)}
            if counts:
                record |= {"train_images": counts[0], "test_images": counts[1]}
            atomic_write(self.data_file, json.dumps(record, indent=1) + "\n")
        if old_source is None:
            atomic_write(self.dataset_file, source + "\n")  # what the data was, for the report's figures

    # ---- provenance
    def record_environment(self, environment: dict) -> None:
        """Add `environment` to trained_with.json unless it is there: earlier ones (a run resumed elsewhere) are kept."""
        environments = self.environments()
        if environment not in environments:
            atomic_write(self.trained_with_file, json.dumps([*environments, environment], indent=1) + "\n")

    def environments(self) -> list[dict]:
        """What the run trained with, one dict per environment (see the module's doc); [] if not recorded."""
        try:
            return json.loads(self.trained_with_file.read_text())
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            return [{"note": f"unreadable {self.trained_with_file.name}"}]
        try:
            return [
                parse_environment_text(x) for x in self.trained_with_text_file.read_text().splitlines() if x.strip()
            ]
        except OSError:
            return []

    # ---- the lock's holder: what a second process reads to tell whether it may leave the run to it
    def claim(self, cfg: DictConfig | dict) -> None:
        """Say, while holding the run's lock, which process trains it with which settings."""
        record = {"pid": os.getpid(), "host": socket.gethostname(), "settings": run_settings(cfg)}
        record["data_root"] = claimed_data_root(cfg)  # the same settings on other data are not the same run
        atomic_write(self.holder_file, json.dumps(record, default=str) + "\n")

    def holder(self) -> dict | None:
        """The lock holder's claim, or None where there is none to read (not yet written, torn, or stale)."""
        try:
            record = json.loads(self.holder_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
            return None
        return record if process_alive(record.get("pid"), record.get("host")) is not False else None

    def check_holder(self, cfg: DictConfig | dict, wait_s: float = 3.0) -> dict:
        """Another process holds the lock: its claim if it trains these very settings; else RunBusy or
        ConfigMismatch, naming why this process cannot proceed. A holder that has not said yet what it trains
        (it is loading the data) is given `wait_s` to say it."""
        deadline = time.monotonic() + wait_s
        while (record := self.holder()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if record is None:
            raise RunBusy(
                f"{self.path} is locked by another process that does not say what it trains ({self.holder_file.name} "
                f"unreadable or gone): cannot tell its settings from these; wait for it to end, then run the same "
                f"command again"
            )
        process = f"pid {record.get('pid')} on {record.get('host')}"
        old, new = record["settings"], json.loads(json.dumps(run_settings(cfg), default=str))
        if diffs := settings_diff(old, new):
            raise ConfigMismatch(
                f"another process ({process}) is training {self.path} with other settings ({diffs}); "
                f"use another name=<sweep> or out_dir=, or wait for it and restore its values"
            )
        theirs, ours = record.get("data_root"), claimed_data_root(cfg)
        if theirs is not None and theirs != ours:
            raise ConfigMismatch(
                f"another process ({process}) is training {self.path} on other data (data.root {theirs}, here "
                f"{ours}); point data.root at its data, or use another name=<sweep> or out_dir="
            )
        return record

    # ---- config
    def check_config(self, cfg: DictConfig | dict) -> None:
        """Refuse to mix two runs in one directory: their `run_settings` must be equal (runtime keys may differ)."""
        if not self.config_file.is_file():
            return
        try:
            loaded = OmegaConf.load(self.config_file)
            if not isinstance(loaded, DictConfig) or not loaded:  # an empty file is no config, not another one
                raise ValueError("empty, or not a mapping of settings")
            old = run_settings(loaded)
        except Exception as e:
            raise RunFileError(
                f"unreadable {self.config_file} ({_first_line(e)}); restore it, or delete {self.path} to retrain the run"
            ) from None
        new = run_settings(cfg)
        if diffs := settings_diff(old, new):
            raise ConfigMismatch(
                f"{self.path} was made with another config ({diffs}); "
                f"use another name=<sweep> or out_dir=, or restore the old values"
            )

    def save_config(self, cfg: DictConfig | dict) -> None:
        if not self.config_file.is_file():
            atomic_write(self.config_file, OmegaConf.to_yaml(OmegaConf.create(cfg), resolve=True))

    # ---- status
    def status(self) -> dict:
        try:
            status = json.loads(self.status_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise RunFileError(
                f"unreadable {self.status_file} ({_first_line(e)}); delete it to let the run resume"
            ) from None
        if not isinstance(status, dict):  # a list, a string, null: JSON, but no run's status
            raise RunFileError(
                f"{self.status_file} holds {json.dumps(status)[:40]}, which is not one of a run's statuses (a mapping "
                f"with a state: {', '.join(STATES)}); delete it to let the run resume"
            )
        return status

    def set_status(self, state: str, **info) -> None:
        assert state in STATES, state
        record = {"state": state, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(), **info}
        atomic_write(self.status_file, json.dumps(record, indent=1) + "\n")

    # ---- metrics
    def read_metrics(self, up_to_step: int | None = None) -> list[dict]:
        """metrics.csv's rows (step as int, the rest as written), each checked: a damaged file is refused
        in one line naming the row, never carried forward into a resumed run or a figure."""
        if not self.metrics_file.is_file():
            return []
        try:
            with open(self.metrics_file, newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
            columns = reader.fieldnames or []
            if columns and (sorted(columns) != sorted(METRIC_COLUMNS)):  # a column lost, added or renamed
                raise ValueError(f"its columns are {', '.join(columns)}, not {', '.join(METRIC_COLUMNS)}")
            previous = 0
            for number, row in enumerate(rows, start=2):  # line 1 is the header
                problem = _metrics_row_problem(row, previous)
                if problem:
                    raise ValueError(f"line {number}: {problem}")
                row["step"] = previous = int(row["step"])
        except (OSError, KeyError, TypeError, ValueError, csv.Error) as e:
            raise RunFileError(
                f"unreadable metrics file {self.metrics_file} ({_first_line(e)}); restore it, or delete {self.path} to retrain the run"
            ) from None
        return [r for r in rows if up_to_step is None or r["step"] <= up_to_step]

    def write_metrics(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.metrics_file, buffer.getvalue())

    # ---- checkpoint
    def write_checkpoint(self, save: Callable[[Path], object]) -> None:
        """`save(path)` writes a checkpoint; it becomes last.ckpt only once whole and on disk,
        so a kill at any moment leaves the previous checkpoint or the new one, never a torn one."""
        tmp = _temporary(self.checkpoint)
        try:
            save(tmp)
            _replace(tmp, self.checkpoint)
        except Exception as e:  # noqa: BLE001 (OSError, or torch's RuntimeError for a write that failed: a full disk)
            _remove(tmp)  # the last good checkpoint stays as it was
            raise write_fault(self.checkpoint, e) from None

    def write_snapshot(self, step: int, weights: dict) -> None:
        """The net's weights at `step` as snapshots/step-<step>.pt, in weights.pt's layout ({"state_dict": ...},
        plus the step), written whole or not at all."""
        path = self.snapshot_file(step)
        path.parent.mkdir(exist_ok=True)
        tmp = _temporary(path)
        torch.save({"step": step, "state_dict": weights}, tmp)
        _replace(tmp, path)

    def snapshot_file(self, step: int) -> Path:
        return self.snapshots_dir / f"step-{step}.pt"

    def snapshots(self) -> dict[int, Path]:
        """The weight snapshots the run kept, by step (its final weights are the last one of a finished run)."""
        found = {}
        for path in self.snapshots_dir.glob("step-*.pt"):
            step = path.stem.removeprefix("step-")
            if step.isdigit():
                found[int(step)] = path
        return dict(sorted(found.items()))

    def final_weights(self) -> Path | None:
        """Where the final network weights are: last.ckpt in a run directory, weights.pt in a collected copy."""
        for path in (self.checkpoint, self.weights_file):
            if path.is_file():
                return path
        return None

    def check_checkpoint(self, steps: int | None = None) -> int:
        """Refuse, before any work, a last.ckpt that cannot be resumed from: unreadable, not this project's,
        holding a non-finite tensor (weights or optimizer state), or past the run's `steps`. Returns its step.
        It is never deleted: it may hold days of training, and only a person can tell why it is broken."""
        try:
            checkpoint = torch.load(self.checkpoint, map_location="cpu", weights_only=False, mmap=True)
            missing = {"state_dict", "optimizer_states", "loops"} - set(checkpoint)
            if missing:
                raise ValueError(f"no {', '.join(sorted(missing))} in it: not a checkpoint of this project")
            for name, tensor in _tensors(
                {"state_dict": checkpoint["state_dict"], "optimizer": checkpoint["optimizer_states"]}
            ):
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise ValueError(f"{name} holds NaN or inf")
            step = int(checkpoint.get("global_step", 0))
            if steps is not None and step > steps:
                raise ValueError(f"it is at step {step}, past this run's steps={steps}")
        except Exception as e:
            raise RunFileError(
                f"unreadable checkpoint {self.checkpoint} ({_first_line(e)}); move it away to restart "
                f"this run from step 0, or delete {self.path} to retrain it"
            ) from None
        return step

    def check_resume(self, steps: int, log_every: int) -> int | None:
        """Everything a resume reads, checked before any work (RunFileError, one line, naming the file and
        the fix): the metrics, the checkpoint, and that they agree. A run logs its metrics at a log point
        before it checkpoints there, so the metrics reach the checkpoint's last log point. The step to
        resume from, or None if there is no checkpoint."""
        rows = self.read_metrics()
        if not self.checkpoint.is_file():
            return None
        step = self.check_checkpoint(steps)
        logged = max((r["step"] for r in rows), default=0)
        if logged < step - step % log_every:
            raise RunFileError(
                f"{self.metrics_file} ends at step {logged} but {self.checkpoint.name} is at step {step}: rows are "
                f"missing; restore the metrics file, or move the checkpoint away to restart the run from step 0"
            )
        return step

    def remove_partial_writes(self) -> None:
        """Delete the temporary files of writers killed mid-write. Only the process holding the
        run's lock may call this: no other process writes here then."""
        for tmp in [*self.path.glob(".*.tmp*"), *self.snapshots_dir.glob(".*.tmp*")]:
            tmp.unlink(missing_ok=True)


SPLITS = ("train", "val", "test")


def _metrics_row_problem(row: dict, previous_step: int) -> str | None:
    """What is wrong with one metrics.csv row, or None. A diverged run's last loss is NaN or inf (that is
    what it records); every other number must be finite, and steps never go back."""
    try:
        step = int(row["step"])
        error, loss, lr, elapsed = (float(row[k]) for k in ("error", "loss", "lr", "elapsed_s"))
    except (TypeError, ValueError):
        return f"a value that is not a number in {dict(row)}"
    del loss  # any float: NaN/inf marks divergence
    if row["split"] not in SPLITS:
        return f"split {row['split']!r} is not one of {', '.join(SPLITS)}"
    if step < previous_step:
        return f"step {step} comes after step {previous_step}"
    if not (0 <= error <= 1) or not math.isfinite(lr) or lr < 0 or not math.isfinite(elapsed):
        return f"error={row['error']}, lr={row['lr']}, elapsed_s={row['elapsed_s']}: out of range or not finite"
    return None


def _tensors(tree, prefix: str = ""):
    """Every tensor in a nested checkpoint structure, with its path (optimizer.state.3.momentum_buffer)."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _tensors(value, f"{prefix}.{i}")
