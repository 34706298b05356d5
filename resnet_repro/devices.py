"""Which GPU a run computes on, and the CUDA settings it computes with.

One GPU per run, up to `trainer.runs_per_gpu` runs per GPU. On a machine with N GPUs, each GPU has
runs_per_gpu slots; a run claims a free slot when it starts (a file lock, taken without waiting)
and frees it when it ends, so the next job takes the freed GPU. A job that finds every slot taken
waits for one. The locks are the operating system's (flock): a killed run frees its slot at once.

    with gpu_slot(spec.trainer) as device:   # None on a CPU; else the index of the claimed GPU
        trainer = build_trainer(spec, root, device=device)

Why a lock per slot and Lightning's `devices=[i]`, not CUDA_VISIBLE_DEVICES:
- Hydra's launchers run jobs in processes they reuse (joblib's workers run job after job; the basic
  launcher runs a whole sweep in one process). CUDA reads CUDA_VISIBLE_DEVICES once, when it starts
  in a process, so only the first job could choose its GPU that way; `devices=[i]` works for each.
- Job numbers do not say which GPU is free: job 9 of a sweep on 8 GPUs must take whichever GPU
  finished first, not GPU 9 mod 8. The locks say what is free, across every process of the
  machine, including another sweep started beside the first.
- submitit's local launcher hands every job the same first `gpus_per_node` GPUs; hydra/launcher=local
  (conf/hydra/launcher/local.yaml) shows each job all of them, and the job claims one here.
- Every job claims, on a machine with one GPU too: with runs_per_gpu=1, a joblib sweep of 4 jobs then
  trains one run at a time on it, not 4 fighting over its memory.

A slot is named by what the GPU is (its UUID, which every process reads alike however
CUDA_VISIBLE_DEVICES spells it: `4`, `GPU-8e1f...`), so two processes that see one GPU share its slots.

The slots live in $RESNET_REPRO_GPU_SLOTS, default /tmp/resnet-repro-gpu-slots-<user> (the user id where
the user has no name: a container run with `-u 1234`): local to the machine (a shared file system
would mix up GPU 0 of one node with GPU 0 of another). Under Slurm, in a folder of the job's own:
Slurm numbers a job's GPUs from 0 in every job (cgroups), so two jobs on one node must not share slot
names; one job with several GPUs (salloc, then a joblib sweep) shares them out as above.

The locks must be the kernel's (flock): filelock falls back, silently, to a lock file's existence where
the file system has no flock (Lustre without `-o flock`), and a killed run would then keep its lock for
good. `require_flock` refuses such a folder before any work.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from .spec import ConfigError, TrainerSettings

SLOTS_ENV = "RESNET_REPRO_GPU_SLOTS"
# The launching shell's CUDA_VISIBLE_DEVICES, passed to hydra/launcher=local's jobs in their environment.
LAUNCHER_VISIBLE_ENV = "RESNET_REPRO_LAUNCHER_GPUS"
WAIT_POLL_S = 2.0


# What flock(2) says where the file system has no flock: not supported, no locks, not implemented.
NO_FLOCK_ERRNOS = frozenset({errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOLCK, errno.EINVAL})


def user_name() -> str:
    """The user's name, or `uid<N>` where the user id has no name (docker run -u, Kubernetes, OpenShift:
    getpass.getuser() raises there, KeyError or OSError by Python version)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def require_flock(folder: Path, what: str) -> None:
    """ConfigError (one line, naming the fix) if `folder`'s file system cannot flock: its locks would be
    existence locks (filelock's silent fallback), which a killed process never frees."""
    try:
        import fcntl
    except ImportError:  # Windows: filelock locks with msvcrt there, which the kernel frees as flock is
        return
    probe = folder / f".flock-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return  # an unwritable folder is refused where it is written, with its own error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError as e:
        if e.errno in NO_FLOCK_ERRNOS:
            raise ConfigError(
                f"{what} {folder} is on a file system without flock ({os.strerror(e.errno)}), so a killed run "
                "would keep its lock; put it on one with flock (a local disk, NFSv4, Lustre mounted -o flock)"
            ) from None
        if e.errno not in (errno.EAGAIN, errno.EACCES):  # EAGAIN/EACCES: another process holds it, flock works
            raise
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def slots_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"resnet-repro-gpu-slots-{user_name()}"
    folder = Path(os.environ.get(SLOTS_ENV) or default)
    job = os.environ.get("SLURM_JOB_ID")
    return folder / f"slurm-job-{job}" if job else folder


def physical_ids(count: int) -> list[str]:
    """What each visible GPU is on this machine (the slot's name): CUDA_VISIBLE_DEVICES renumbers the
    GPUs a process sees from 0, and two processes that see different GPUs must not share slots. The
    GPU's UUID where torch reads one (one name for one GPU, however CUDA_VISIBLE_DEVICES spells it),
    else the variable's text."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return [_uuid(i) or (visible[i] if i < len(visible) else str(i)) for i in range(count)]


def _uuid(index: int) -> str | None:
    try:
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    except Exception:  # noqa: BLE001 (no driver, a GPU lost, a faked count in the tests: the text names it)
        return None
    return f"GPU-{uuid}" if uuid else None


def claim(runs_per_gpu: int, wait: bool = True, say=print) -> tuple[int, FileLock] | None:
    """A free slot: (index of its GPU among the visible ones, its held lock). The GPU with the most free
    slots is tried first, so runs spread over the GPUs before they share one. Waits while all are taken
    (None at once if `wait` is false)."""
    count = torch.cuda.device_count()
    if count == 0:  # resolve() refuses cuda without a GPU; this guards a GPU lost since
        raise RuntimeError("torch finds no CUDA device: nothing to claim")
    folder = slots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    require_flock(folder, f"the GPU slots' folder (${SLOTS_ENV})")
    names = [n.replace("/", "_") for n in physical_ids(count)]
    waited = False
    while True:
        slots = [[FileLock(str(folder / f"gpu-{name}.slot{k}.lock")) for k in range(runs_per_gpu)] for name in names]
        busy = [sum(_is_held(lock) for lock in locks) for locks in slots]
        for device in sorted(range(count), key=lambda i: (busy[i], i)):
            for lock in slots[device]:
                try:
                    lock.acquire(timeout=0)
                    return device, lock
                except Timeout:
                    continue
        if not wait:
            return None
        if not waited:
            say(f"[wait] all {count} GPUs have {runs_per_gpu} run(s) each; waiting for one to finish")
            waited = True
        time.sleep(WAIT_POLL_S)


def _is_held(lock: FileLock) -> bool:
    """Whether another process (or another lock object) holds this slot now; probes without keeping it."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


@contextlib.contextmanager
def gpu_slot(trainer: TrainerSettings, say=print) -> Iterator[int | None]:
    """The GPU index this run uses, held for the duration of the `with` block; None off CUDA."""
    if trainer.accelerator != "cuda":
        yield None
        return
    device, lock = claim(trainer.runs_per_gpu, say=say)
    try:
        yield device
    finally:
        lock.release()


@contextlib.contextmanager
def analysis_device(device: str, runs_per_gpu: int = 1, say=print) -> Iterator[str]:
    """Where a report's forward and backward passes run (Figure 7, test predictions, gradients): `device`
    as given, except on CUDA. There a bare "cuda" becomes the GPU of a slot claimed as a run claims one
    (an end-of-sweep report never piles onto a GPU that another sweep's runs fill), and float32 runs in
    full fp32, not TF32: the statistics are of the fp32 nets the runs trained. The TF32 switches are put
    back as they were when the block ends."""
    if torch.device(device).type != "cuda":
        yield device
        return
    saved = _tf32_switches()
    use_float32_precision("32-true")
    try:
        if device != "cuda":  # a GPU named by the user ("cuda:1"): theirs to choose
            yield device
            return
        index, lock = claim(runs_per_gpu, say=say)
        try:
            yield f"cuda:{index}"
        finally:
            lock.release()
    finally:
        _set_tf32_switches(saved)


def _tf32_switches() -> tuple:
    if hasattr(torch.backends.cudnn, "conv"):
        b = torch.backends
        return b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision, b.cuda.matmul.fp32_precision
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def _set_tf32_switches(saved: tuple) -> None:
    b = torch.backends
    if hasattr(b.cudnn, "conv"):
        b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision, b.cuda.matmul.fp32_precision = saved
    else:
        b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = saved


def use_float32_precision(precision: str) -> None:
    """Under 32-true, float32 convolutions and matmuls in full fp32 ("ieee"), as the paper trained:
    torch's default lets cuDNN run fp32 convolutions in TF32 (10-bit mantissa) on Ampere and later.
    Otherwise torch's defaults (set again: a process may run several runs). No effect on a CPU.
    torch 2.9 and later spell it fp32_precision; older ones allow_tf32 (deprecated from 2.9)."""
    fp32 = precision == "32-true"
    if hasattr(torch.backends.cudnn, "conv"):
        conv = "ieee" if fp32 else "tf32"
        torch.backends.cudnn.conv.fp32_precision = conv
        torch.backends.cudnn.rnn.fp32_precision = conv
        torch.backends.cuda.matmul.fp32_precision = "ieee" if fp32 else "none"
    else:
        torch.backends.cudnn.allow_tf32 = not fp32  # torch's defaults: True for cuDNN, False for matmuls
        torch.backends.cuda.matmul.allow_tf32 = False


def tf32_allowed() -> bool:
    """Whether float32 convolutions may run in TF32 now (what use_float32_precision set), in either spelling."""
    if hasattr(torch.backends.cudnn, "conv"):
        return torch.backends.cudnn.conv.fp32_precision == "tf32" or torch.backends.cuda.matmul.fp32_precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)


def gpu_count() -> int:
    """The GPUs this process sees (0 without CUDA); the config's ${gpu_count:} (hydra/launcher=local).
    It also notes which GPUs those are, for the local launcher's jobs (LAUNCHER_VISIBLE_ENV)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        os.environ.pop(LAUNCHER_VISIBLE_ENV, None)
    else:
        os.environ[LAUNCHER_VISIBLE_ENV] = visible
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _take_back_launcher_gpus() -> None:
    """In a job of submitit's local executor, the launching shell's CUDA_VISIBLE_DEVICES again: the executor
    sets it to 0..N-1, whatever the shell saw. Run at import, before anything in the job touches CUDA
    (CUDA reads the variable once per process)."""
    if os.environ.get("SUBMITIT_EXECUTOR") == "local" and LAUNCHER_VISIBLE_ENV in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = os.environ[LAUNCHER_VISIBLE_ENV]


_take_back_launcher_gpus()
