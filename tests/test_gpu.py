"""The CUDA path, without a GPU: device counts, capabilities and job numbers are faked; what a GPU run
decides (which GPU, precision, compile, TF32, determinism, the launchers' GPUs) is checked as decided."""

from __future__ import annotations

import os
import time

import pytest
import torch
from conftest import make_spec, tiny_overrides

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
    """Restores the process-wide flags a Trainer sets (TF32, determinism, cuDNN benchmark), in either of
    torch's spellings of the TF32 switches (fp32_precision from 2.9, allow_tf32 before)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    new_api = hasattr(cudnn, "conv")
    fp32 = (cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision, matmul.fp32_precision) if new_api else None
    saved = (cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark)
    yield
    if new_api:
        cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision, matmul.fp32_precision = fp32
    else:
        cudnn.allow_tf32, matmul.allow_tf32 = saved[:2]
    cudnn.benchmark = saved[2]
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
    assert not devices.tf32_allowed()  # torch's default: TF32 for cuDNN convolutions
    if hasattr(torch.backends.cudnn, "conv"):  # torch >= 2.9
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    # A later run in the same process in bf16 gets torch's defaults back.
    build_trainer(make_spec(["trainer.accelerator=cpu", "trainer.precision=bf16-mixed"], check_data=False), tmp_path)
    assert devices.tf32_allowed()


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


# --------------------------------------------------------------------------- the second pass (issue 22)


def test_tf32_switch_on_a_torch_before_2_9(torch_flags, monkeypatch):  # monkeypatch undone first
    """torch < 2.9 has no torch.backends.cudnn.conv (fp32_precision): the switch uses allow_tf32 there."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    monkeypatch.delattr(type(torch.backends.cudnn), "conv", raising=False)  # absent already before 2.9
    assert not hasattr(torch.backends.cudnn, "conv")
    try:
        devices.use_float32_precision("32-true")
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert not devices.tf32_allowed()
        devices.use_float32_precision("bf16-mixed")  # torch's defaults back
        assert torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_local_launcher_jobs_get_the_shells_gpus_not_0_1(tmp_path, monkeypatch):
    """CUDA_VISIBLE_DEVICES=4,5 in the shell: submitit's local executor sets 0,1 in each job; the job
    takes 4,5 back when it imports the project, before anything touches CUDA."""
    import subprocess
    import sys
    import types

    import submitit.local.local as submitit_local

    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    monkeypatch.delenv(devices.LAUNCHER_VISIBLE_ENV, raising=False)
    local = launcher_config(monkeypatch, ["hydra/launcher=local"])
    assert local.gpus_per_node == 2
    started = {}

    class Process:
        pid = 0

    def popen(cmd, shell, env):
        started.update(env=env)
        return Process()

    monkeypatch.setattr(submitit_local, "subprocess", types.SimpleNamespace(Popen=popen))
    # what the executor does with gpus_per_node (submitit/local/local.py, _submit_command)
    submitit_local.start_controller(tmp_path, "cmd", cuda_devices=",".join(str(k) for k in range(local.gpus_per_node)))
    env = started["env"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["SUBMITIT_EXECUTOR"] == "local"
    seen = subprocess.run(
        [sys.executable, "-c", "import os, resnet_repro.devices; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert seen == "4,5", "a local job must train on the shell's GPUs, not on someone else's 0 and 1"


def test_mps_trains_eager_in_fp32_with_no_float64_anywhere(monkeypatch, tmp_path):
    """trainer.accelerator=mps (faked): fp32, eager even for a long run, and nothing float64 in the module
    (MPS holds no float64: the counters and evaluate()'s sums). The module then steps and evaluates on the
    CPU with those dtypes, as far as the CPU can stand in for MPS."""
    import pytorch_lightning as pl

    from resnet_repro.train import build_module

    fake_gpus(monkeypatch, 0)
    monkeypatch.setattr("torch.backends.mps.is_available", lambda: True)
    spec = make_spec(["trainer.accelerator=mps", "depth=8"], check_data=False)
    assert (spec.trainer.accelerator, spec.trainer.precision, spec.trainer.compile) == ("mps", "32-true", "false")
    assert spec.steps >= 5000, "compile=auto on MPS stays eager however long the run"
    module = build_module(spec)
    float64 = [name for name, t in module.state_dict().items() if t.dtype == torch.float64]
    assert not float64, f"MPS cannot hold {float64}"
    summed = []
    zeros = torch.zeros

    def zeros_spy(*args, **kwargs):
        summed.append(kwargs.get("dtype"))
        return zeros(*args, **kwargs)

    images = torch.randn(32, 3, 32, 32).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (32,))
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )

    class Batches:  # an iterable of batches, as TrainBatches is (a list would be a list of loaders)
        def __iter__(self):
            return iter([(images, labels)] * 2)

    trainer.fit(module, train_dataloaders=Batches())
    assert trainer.global_step == 2 and module.train_counts.dtype == torch.float32
    assert module.pop_train_metrics()["error"] <= 1
    monkeypatch.setattr("resnet_repro.module.torch.zeros", zeros_spy)
    result = module.evaluate([(images, labels)])
    assert 0 <= result["error"] <= 1 and summed and torch.float64 not in summed


@pytest.mark.parametrize("why", ["old GPU", "no Triton"])
def test_compile_only_where_triton_compiles(monkeypatch, why):
    """A P100 / GTX 10xx (capability 6.x) or no Triton (Windows): compile=auto stays eager (each run would
    fail at its first step); an explicit compile is refused in one line naming the fix."""
    import sys

    fake_gpus(monkeypatch, 2, (6, 0) if why == "old GPU" else (8, 0))
    if why == "no Triton":
        monkeypatch.setitem(sys.modules, "triton", None)
    t = make_spec(["trainer.accelerator=cuda"], check_data=False).trainer
    assert t.compile == "false", "a run of 64,000 steps, but torch.compile cannot run here"
    with pytest.raises(ConfigError, match="use trainer.compile=false"):
        make_spec(["trainer.accelerator=cuda", "trainer.compile=true"], check_data=False)


def test_a_user_id_without_a_name_still_claims_a_gpu(tmp_path, monkeypatch):
    """docker run -u 1234 (Kubernetes, OpenShift): getpass.getuser() raises; the slots go under uid1234."""

    def no_name():
        raise KeyError("getpwuid(): uid not found: 1234")

    fake_gpus(monkeypatch, 1)
    monkeypatch.setattr("getpass.getuser", no_name)
    monkeypatch.delenv(devices.SLOTS_ENV, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    assert devices.slots_dir() == tmp_path / f"resnet-repro-gpu-slots-uid{os.getuid()}"
    device, lock = devices.claim(1, wait=False)
    assert device == 0
    lock.release()


@pytest.mark.parametrize("order", ["old, new", "new, old"])
def test_precision_and_compile_are_decided_for_the_claimed_gpu(tiny_batches, tmp_path, monkeypatch, order):
    """A machine with a V100 and an H100: GPU 0 is busy, so the run claims GPU 1 and its precision is
    that GPU's (bf16 on the H100, fp32 on the V100), not GPU 0's."""
    from conftest import tiny_overrides

    capabilities = [(7, 0), (9, 0)] if order == "old, new" else [(9, 0), (7, 0)]
    fake_gpus(monkeypatch, 2)
    monkeypatch.setattr("torch.cuda.get_device_capability", lambda device=None: capabilities[device or 0])
    monkeypatch.setenv(devices.SLOTS_ENV, str(tmp_path / "slots"))
    other = devices.claim(1, wait=False)
    assert other[0] == 0
    got = []

    def fit_stub(spec, run, gpu, ctrl_c):
        got.append((gpu, spec.trainer.precision))
        raise Stop

    monkeypatch.setattr("resnet_repro.train._fit", fit_stub)
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8", "trainer.accelerator=cuda"])
    with pytest.raises(Stop):
        train(spec)
    other[1].release()
    assert got == [(1, "bf16-mixed" if order == "old, new" else "32-true")]


def test_a_file_system_without_flock_is_refused_not_soft_locked(tiny_batches, tmp_path, monkeypatch):
    """Lustre without -o flock: filelock would silently fall back to an existence lock, which a killed run
    never frees (every requeued job then skips the run). The run is refused in one line instead."""
    import errno
    import fcntl

    from conftest import tiny_overrides

    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    monkeypatch.setattr("resnet_repro.train._fit", lambda *a: pytest.fail("trained without a working lock"))
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path / "out"), "depth=8"])
    with pytest.raises(ConfigError, match="file system without flock.*Lustre mounted -o flock"):
        train(spec)
    assert not (tmp_path / "out").exists(), "a refused run leaves nothing"


def test_one_gpu_has_one_set_of_slots_however_it_is_spelt(monkeypatch):
    """CUDA_VISIBLE_DEVICES=0 in one shell and GPU-<uuid> in another: one GPU, so one set of slots."""

    class Properties:
        uuid = "8e1f0c2a-0000-4000-8000-000000000001"

    monkeypatch.setattr("torch.cuda.get_device_properties", lambda index: Properties())
    names = set()
    for spelling in ("0", "GPU-8e1f0c2a-0000-4000-8000-000000000001"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spelling)
        names.add(tuple(devices.physical_ids(1)))
    assert names == {("GPU-8e1f0c2a-0000-4000-8000-000000000001",)}


def test_lightning_does_not_requeue_slurm_jobs_beside_submitit(tmp_path, monkeypatch):
    """Inside a Slurm job, Lightning's SLURMEnvironment would requeue the job on SIGUSR1 beside
    submitit's requeue on USR2: its own requeue is off."""
    for key, value in {
        "SLURM_JOB_ID": "7",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "run",
        "SLURM_NODELIST": "n1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("lightning_fabric.plugins.environments.slurm._is_srun_used", lambda: True)
    trainer = build_trainer(make_spec(["trainer.accelerator=cpu"], check_data=False), tmp_path)
    environment = trainer._accelerator_connector.cluster_environment
    assert type(environment).__name__ == "SLURMEnvironment" and environment.auto_requeue is False


# --------------------------------------------------------------------------- second pass, the smaller ones


def test_augmentation_is_drawn_on_the_cpu_whatever_the_device(monkeypatch):
    """CPU and CUDA generators draw differently for one seed: a run checkpointed on one device type and
    resumed on the other would silently see other batches. Every draw is made by a CPU generator and moved."""
    from resnet_repro import data

    drawn_on = []
    for name in ("randperm", "randint", "rand"):
        real = getattr(torch, name)

        def spy(*args, real=real, **kwargs):
            drawn_on.append((kwargs["generator"].device.type, torch.device(kwargs.get("device") or "cpu").type))
            return real(*args, **kwargs)

        monkeypatch.setattr(data.torch, name, spy)
    images, labels = torch.zeros(40, 3, 32, 32, dtype=torch.uint8), torch.arange(40) % 10
    stream = data.TrainBatches(images, labels, torch.zeros(3, 32, 32), 16, seed=3, device="meta")
    x, y = next(iter(stream))  # meta: any device but the CPU (no generator can live there)
    assert x.device.type == "meta" and x.shape == (16, 3, 32, 32)
    assert drawn_on and set(drawn_on) == {("cpu", "cpu")}


def test_a_reports_forward_passes_claim_a_gpu_slot_and_run_in_fp32(tmp_path, monkeypatch, torch_flags):
    """Figure 7 at the end of a sweep ran on GPU 0 whoever held it, and in TF32 (torch's default for cuDNN)."""
    from omegaconf import OmegaConf

    from resnet_repro.report import callback

    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv(devices.SLOTS_ENV, str(tmp_path / "slots"))
    devices.use_float32_precision("bf16-mixed")  # torch's defaults: TF32 allowed
    _, held = devices.claim(1)  # another sweep's run holds GPU 0
    sweep = tmp_path / "sweep"
    (sweep / "plain-20").mkdir(parents=True)
    (sweep / "plain-20" / "metrics.csv").write_text("step\n1\n")  # a run that trained: there is a report to make
    seen = []

    def make_report(root, out, device, command):
        seen.append((device, devices.tf32_allowed(), devices.claim(1, wait=False)))

    monkeypatch.setattr(callback, "make_report", make_report)
    config = OmegaConf.create({"report": True, "hydra": {"sweep": {"dir": str(sweep)}}, "trainer": {"runs_per_gpu": 1}})
    callback.ReportCallback().on_multirun_end(config)
    assert seen[0][:2] == ("cuda:1", False), "a free GPU's slot, fp32 convolutions"
    assert seen[0][2] is None, "the slot was held while the report ran"
    assert devices.tf32_allowed(), "the TF32 switches are put back"
    held.release()
    assert devices.claim(1, wait=False) is not None, "and the slot is freed"
    with devices.analysis_device("cpu") as device:
        assert device == "cpu"


def test_compile_workers_are_the_runs_share_of_the_cores(monkeypatch):
    """Inductor's default pool is min(32, cores) per process: a 16-job sweep started 16 x cores workers."""
    import torch._inductor.config as inductor

    from resnet_repro.module import compile_workers, limit_compile_workers

    threads = torch.get_num_threads()
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    monkeypatch.delenv("TORCHINDUCTOR_COMPILE_THREADS", raising=False)
    monkeypatch.setattr(inductor, "compile_threads", 16)
    try:
        torch.set_num_threads(1)  # a joblib worker of a 16-job sweep: cores // n_jobs threads
        assert compile_workers(on_gpu=False, runs_per_gpu=1) == 1
        limit_compile_workers(on_gpu=False, runs_per_gpu=1)
        assert inductor.compile_threads == 1
        torch.set_num_threads(16)
        fake_gpus(monkeypatch, 8)
        assert compile_workers(on_gpu=True, runs_per_gpu=2) == 1, "16 runs train at once on 8 GPUs"
        fake_gpus(monkeypatch, 1)
        assert compile_workers(on_gpu=True, runs_per_gpu=1) == 16, "one run alone keeps every core"
        monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "3")
        limit_compile_workers(on_gpu=True, runs_per_gpu=1)
        assert inductor.compile_threads == 1, "the user's setting wins (Inductor reads it itself)"
    finally:
        torch.set_num_threads(threads)


def test_dry_run_warns_when_a_net_will_not_fit_the_gpu(tiny_batches, tmp_path, monkeypatch, capsys):
    """ResNet-1202 at batch 128 keeps ~11 GiB for backward: on an 8 GiB card every step runs out of memory,
    and the dry run's own timing step would be the first to."""
    from resnet_repro import plan

    class Card:
        name, total_memory, uuid = "Tesla P4", 8 * 2**30, "8e1f0c2a-0000-4000-8000-000000000002"

    fake_gpus(monkeypatch, 1, capability=(6, 1))
    monkeypatch.setattr("torch.cuda.get_device_properties", lambda index: Card())
    timed = []
    monkeypatch.setattr(plan, "measure_step", lambda spec, **kw: timed.append(spec.net.depth) or 0.5)
    overrides = [o for o in tiny_overrides(tiny_batches, tmp_path) if not o.startswith("batch_size")]
    status = plan.plan(["-m", "arch=resnet", "depth=20,1202", "trainer.accelerator=cuda", *overrides])
    err = capsys.readouterr().err
    assert status == 0 and timed == [20], "the net that fits is timed; the one that does not is not"
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1 and "resnet-1202 at batch_size=128 needs about 11.2 GiB" in lines[0], err
    assert "Tesla P4" in lines[0] and "8.0 GiB" in lines[0]
