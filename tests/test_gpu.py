"""The CUDA path, without a GPU: device counts, capabilities and job numbers are faked; what a GPU run
decides (which GPU, precision, compile, TF32, determinism, the launchers' GPUs) is checked as decided."""

from __future__ import annotations

import os
import time

import pytest
import torch
from conftest import make_spec

from resnet_repro import devices
from resnet_repro.config import CONF_DIR, ConfigError
from resnet_repro.machine import Cpu
from resnet_repro.train import build_trainer, train


def fake_gpus(monkeypatch, count: int, capability=(8, 0)) -> None:
    """torch and Lightning see `count` CUDA GPUs of this compute capability (none is ever used)."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: count > 0)
    monkeypatch.setattr("torch.cuda.device_count", lambda: count)
    monkeypatch.setattr("torch.cuda.get_device_capability", lambda device=None: capability)
    monkeypatch.setattr("lightning_fabric.accelerators.cuda.num_cuda_devices", lambda: count)


@pytest.fixture
def torch_flags():
    """Restores the process-wide flags a Trainer sets (TF32, determinism, cuDNN benchmark)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision, matmul.fp32_precision, cudnn.benchmark)
    yield
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.rnn.fp32_precision = saved[:2]
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.benchmark = saved[2:]
    torch.use_deterministic_algorithms(False)


# --------------------------------------------------------------------------- resolution per device kind


@pytest.mark.parametrize(
    "accelerator, capability, precision",
    [
        ("cuda", (8, 0), "bf16-mixed"),  # A100: bf16 in hardware
        ("gpu", (9, 0), "bf16-mixed"),  # H100, spelt as Lightning also spells it
        ("auto", (8, 6), "bf16-mixed"),  # RTX 30xx, found by auto
        ("cuda", (7, 0), "32-true"),  # V100: bf16 emulated, slower than fp32
        ("gpu", (7, 5), "32-true"),  # T4
    ],
)
def test_precision_and_compile_on_cuda(monkeypatch, accelerator, capability, precision):
    fake_gpus(monkeypatch, 8, capability)
    long = make_spec([f"trainer.accelerator={accelerator}"], check_data=False).trainer
    assert (long.accelerator, long.precision) == ("cuda", precision)
    assert long.compile == "true", "auto on a GPU: torch.compile's default mode, never CUDA graphs"
    zen5 = Cpu("AMD EPYC", "26", "2", ("avx512f", "avx512_bf16"), "AuthenticAMD", 2696.0)
    monkeypatch.setattr("resnet_repro.trainer_settings.read_cpu", lambda: zen5)  # keeps freed memory on its CPU runs
    assert not long.keep_freed_memory and not make_spec([], check_data=False).trainer.keep_freed_memory
    short = make_spec([f"trainer.accelerator={accelerator}", "steps=600", "eval_every=200"], check_data=False).trainer
    assert short.compile == "false"
    assert (
        make_spec(
            [f"trainer.accelerator={accelerator}", "trainer.precision=16-mixed"], check_data=False
        ).trainer.precision
        == "16-mixed"
    )


def test_precision_and_compile_on_cpu_kinds(monkeypatch):
    fake_gpus(monkeypatch, 0)
    # Zen 4: compiling measured faster in fp32, slower in bf16 (conf/cpu_kinds.yaml)
    zen4 = Cpu("AMD EPYC", "25", "17", ("avx512f", "avx512_bf16"), "AuthenticAMD", 2600.0)
    monkeypatch.setattr("resnet_repro.trainer_settings.read_cpu", lambda: zen4)
    for native, precision, compile in ((True, "bf16-mixed", "false"), (False, "32-true", "true")):
        monkeypatch.setattr("resnet_repro.trainer_settings.cpu_has_native_bf16", lambda native=native: native)
        for accelerator in ("auto", "cpu"):
            t = make_spec([f"trainer.accelerator={accelerator}"], check_data=False).trainer
            assert (t.accelerator, t.precision, t.compile) == ("cpu", precision, compile)
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu, but torch finds no CUDA device"):
        make_spec(["trainer.accelerator=gpu"], check_data=False)
    with pytest.raises(ConfigError, match="16-mixed needs a CUDA GPU"):
        make_spec(["trainer.precision=16-mixed"], check_data=False)


# --------------------------------------------------------------------------- TF32, determinism


def test_32_true_is_fp32_on_cuda_not_tf32(tmp_path, torch_flags):
    fp32 = make_spec(["trainer.accelerator=cpu", "trainer.precision=32-true"], check_data=False)
    build_trainer(fp32, tmp_path)
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"  # torch's default: "tf32" for cuDNN convolutions
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    # A later run in the same process in bf16 gets torch's defaults back.
    build_trainer(make_spec(["trainer.accelerator=cpu", "trainer.precision=bf16-mixed"], check_data=False), tmp_path)
    assert torch.backends.cudnn.conv.fp32_precision == "tf32"


def test_deterministic_mode_warns_instead_of_raising(tmp_path, monkeypatch, torch_flags):
    fake_gpus(monkeypatch, 1)
    spec = make_spec(["trainer.accelerator=cuda", "trainer.deterministic=true"], check_data=False)
    trainer = build_trainer(spec, tmp_path)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled(), "the Trainer must not turn warnings into errors"
    assert not torch.backends.cudnn.benchmark and os.environ.get("CUBLAS_WORKSPACE_CONFIG") == ":4096:8"
    assert trainer.strategy.root_device == torch.device("cuda", 0)
    # The next run in the same process (Hydra's basic launcher) is not left deterministic.
    build_trainer(make_spec(["trainer.accelerator=cuda"], check_data=False), tmp_path)
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark


# --------------------------------------------------------------------------- one GPU per run


def test_the_claimed_gpu_is_the_trainers_device(tmp_path, monkeypatch):
    fake_gpus(monkeypatch, 4)
    spec = make_spec(["trainer.accelerator=cuda"], check_data=False)
    trainer = build_trainer(spec, tmp_path, device=2)
    assert trainer.device_ids == [2] and trainer.strategy.root_device == torch.device("cuda", 2)


def test_runs_spread_over_the_gpus_then_share_them_k_at_a_time(tmp_path, monkeypatch):
    fake_gpus(monkeypatch, 3)
    monkeypatch.setenv(devices.SLOTS_ENV, str(tmp_path))
    spec = make_spec(["trainer.accelerator=cuda", "trainer.runs_per_gpu=2"], check_data=False)
    with devices.gpu_slot(spec.trainer) as a, devices.gpu_slot(spec.trainer) as b, devices.gpu_slot(spec.trainer) as c:
        assert sorted([a, b, c]) == [0, 1, 2], "one run per GPU before any GPU takes a second"
        with (
            devices.gpu_slot(spec.trainer) as d,
            devices.gpu_slot(spec.trainer) as e,
            devices.gpu_slot(spec.trainer) as f,
        ):
            assert sorted([d, e, f]) == [0, 1, 2]
            assert devices.claim(2, wait=False) is None, "never more than runs_per_gpu runs on one GPU"
        assert devices.claim(2, wait=False)[0] in (0, 1, 2)
    with devices.gpu_slot(make_spec(["trainer.accelerator=cpu"], check_data=False).trainer) as none:
        assert none is None  # on a CPU nothing changes


def test_visible_devices_and_slurm_jobs_name_their_own_slots(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert devices.physical_ids(2) == ["4", "6"]  # GPU 0 of this process is the machine's GPU 4
    monkeypatch.setenv(devices.SLOTS_ENV, str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert devices.slots_dir() == tmp_path / "slurm-job-123"  # Slurm numbers every job's GPUs from 0


def joblib_job(number: int, hold_s: float, slots: str, count: int, runs_per_gpu: int):
    """One job of a joblib sweep on a faked machine: claims a slot, 'trains' for hold_s, frees it."""
    os.environ[devices.SLOTS_ENV] = slots
    torch.cuda.device_count = lambda: count
    devices.WAIT_POLL_S = 0.05
    device, lock = devices.claim(runs_per_gpu, say=lambda line: None)
    start = time.monotonic()
    time.sleep(hold_s)
    end = time.monotonic()
    lock.release()
    return number, device, start, end


def test_a_joblib_sweep_keeps_every_gpu_busy_and_none_overloaded(tmp_path):
    """8 jobs on 2 GPUs x 2 runs each, through 6 joblib worker processes: at most 2 runs per GPU at any
    moment, both GPUs used, and jobs that waited took a GPU freed by a job that finished early."""
    from joblib import Parallel, delayed

    holds = [0.4, 1.6, 1.6, 1.6, 0.8, 0.8, 0.8, 0.8]
    jobs = Parallel(n_jobs=6)(delayed(joblib_job)(n, h, str(tmp_path), 2, 2) for n, h in enumerate(holds))
    for moment in sorted({t for _, _, start, end in jobs for t in (start, end - 1e-6)}):
        running = [device for _, device, start, end in jobs if start <= moment < end]
        assert len(running) <= 4 and all(running.count(d) <= 2 for d in (0, 1)), f"overloaded at {moment}: {running}"
    assert {device for _, device, _, _ in jobs} == {0, 1}
    first_end = min(end for *_, end in jobs)
    assert sum(start >= first_end for _, _, start, _ in jobs) >= 4, "the waiting jobs started as slots were freed"


# --------------------------------------------------------------------------- launchers


def launcher_config(monkeypatch, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True).hydra.launcher


def test_local_launcher_gives_its_jobs_every_gpu_and_a_long_limit(monkeypatch):
    fake_gpus(monkeypatch, 8)
    local = launcher_config(monkeypatch, ["hydra/launcher=local"])
    assert local.gpus_per_node == 8 and local.timeout_min >= 24 * 60
    fake_gpus(monkeypatch, 0)
    assert launcher_config(monkeypatch, ["hydra/launcher=local"]).gpus_per_node == 0  # a CPU machine: as before


def test_slurm_asks_for_one_gpu_and_a_limit_partitions_accept(monkeypatch):
    slurm = launcher_config(monkeypatch, ["hydra/launcher=slurm"])
    assert slurm.gpus_per_node == 1 and slurm.timeout_min <= 4 * 60
    assert (slurm.max_num_timeout + 1) * slurm.timeout_min >= 72 * 60, "requeues carry the longest run"


class Stop(Exception):
    pass


def test_a_run_trains_on_the_gpu_it_claimed_and_frees_it(tiny_batches, tmp_path, monkeypatch):
    """train(): GPU 0 is busy (another run holds its only slot), so this run takes GPU 1 and hands it
    to Lightning; when the run ends (here: stopped where the Trainer would start), GPU 1 is free again."""
    from conftest import tiny_overrides

    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv(devices.SLOTS_ENV, str(tmp_path / "slots"))
    other = devices.claim(1, wait=False)
    assert other[0] == 0
    used = []

    def trainer_stub(spec, root_dir, callbacks=None, device=None):
        used.append(device)
        raise Stop

    monkeypatch.setattr("resnet_repro.train.build_trainer", trainer_stub)
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8", "trainer.accelerator=gpu"])
    with pytest.raises(Stop):
        train(spec)
    assert used == [1]
    assert devices.claim(1, wait=False)[0] == 1, "the run's slot is free once it ends"
    other[1].release()
