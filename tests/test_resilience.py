"""Sweeps that survive: kills and resume, finished and extended sweeps, divergence and failure,
bad input, the joblib and submitit launchers, and two sweeps writing one folder at once.

Each test runs a few steps of a depth-8 net on the tiny data sets of conftest. Processes are
killed for real (SIGKILL, SIGTERM), and every resumed result is compared with an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, STARTED, make_spec, tiny_overrides

from resnet_repro.config import CONF_DIR
from resnet_repro.module import Classifier
from resnet_repro.results import load_runs
from resnet_repro.runs import RunDir, status_text
from resnet_repro.train import train

# One thread per process: the test machine is shared, and a run resumed in another process
# must do its arithmetic exactly as the uninterrupted one does.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
RESUMABLE = [
    "depth=8",
    "steps=60",
    "eval_every=8",
    "log_every=4",
    "trainer.deterministic=true",
    # Checkpoints fall between log points (the training-error counters are mid-way), and the
    # warm-up is checked at checkpoint steps, where a resume is most likely to get it wrong.
    "trainer.checkpoint_every=5",
    "warmup.enabled=true",
    "warmup.check_every=5",
    "warmup.until_train_error=0.6",
]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sweep_overrides(data_root: Path, out_dir: Path) -> list[str]:
    """tiny_overrides, and no report at the end of a sweep (its figures are tested elsewhere)."""
    return [*tiny_overrides(data_root, out_dir), "report=false"]


def run_py(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=REPO,
        env=ENV,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_run_py(*args: str, log: Path, command: list[str] | None = None) -> subprocess.Popen:
    command = command or [sys.executable, str(REPO / "run.py")]
    process = subprocess.Popen([*command, *args], cwd=REPO, env=ENV, stdout=log.open("w"), stderr=subprocess.STDOUT)
    STARTED.append(process)  # ended by conftest's fixture after the test, whatever happens in it
    return process


def wait_for(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def checkpoint_step(run: RunDir) -> int:
    return torch.load(run.checkpoint, map_location="cpu", weights_only=False)["global_step"]


def metrics(run: RunDir) -> list[dict]:
    """metrics.csv without its wall-clock column (the one thing a resumed run cannot repeat)."""
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in run.read_metrics()]


def run_dir(out: Path, run: str = "resnet-8/seed0", name: str = "default") -> RunDir:
    return RunDir(out / name / run)


# --------------------------------------------------------------------------- resume


# A run.py that dies (SIGKILL) half-way through writing its second checkpoint.
DIES_WRITING = """
import os, runpy, signal, sys
from resnet_repro.runs import RunDir
write, calls = RunDir.write_checkpoint, []
def half_then_die(self, save):
    calls.append(1)
    def torn(path):
        save(path)
        os.truncate(path, os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return write(self, torn if len(calls) == 2 else save)
RunDir.write_checkpoint = half_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_killed_run_resumes_to_the_same_metrics(tiny_batches, tmp_path):
    """SIGKILL at a random moment, SIGKILL in the middle of a checkpoint write, SIGTERM:
    each time the same command resumes, and the end result equals an uninterrupted run's."""
    overrides = [*tiny_overrides(tiny_batches, tmp_path / "killed"), *RESUMABLE]
    assert train(make_spec([*tiny_overrides(tiny_batches, tmp_path / "whole"), *RESUMABLE])) == "done"
    whole = run_dir(tmp_path / "whole")
    run = run_dir(tmp_path / "killed")

    # 1. SIGKILL at a random moment after the first checkpoint.
    chance = random.SystemRandom()  # not the test-seeded `random`: a new moment every time
    delay = chance.uniform(0, 0.3)
    process = start_run_py(*overrides, log=tmp_path / "1.log")
    wait_for(run.checkpoint.is_file, what="the first checkpoint")
    time.sleep(delay)
    assert process.poll() is None, "the run ended before it could be killed; give it more steps"
    process.kill()
    process.wait()
    assert run.status()["state"] == "running" and run.status()["pid"] == process.pid  # SIGKILL writes nothing,
    assert status_text(run.status()).startswith("killed at step")  # but its reader sees the process is gone
    first = checkpoint_step(run)

    # 2. The same command, killed half-way through writing a checkpoint: the old one stays whole.
    process = start_run_py(
        str(REPO / "run.py"), *overrides, log=tmp_path / "2.log", command=[sys.executable, "-c", DIES_WRITING]
    )
    assert process.wait(timeout=300) == -signal.SIGKILL, (tmp_path / "2.log").read_text()[-3000:]
    torn = list(run.path.glob(".last.ckpt.tmp*"))
    assert len(torn) == 1, "the torn write should be left behind under its temporary name"
    with pytest.raises(Exception):  # noqa: B017 (whatever torch raises for a torn archive)
        torch.load(torn[0], weights_only=False)
    second = checkpoint_step(run)  # loadable, and one interval on from the first
    assert second == first + 5

    # 3. The same command, stopped by SIGTERM (a Slurm preemption): it keeps the step it was on.
    process = start_run_py(*overrides, log=tmp_path / "3.log")
    wait_for(lambda: run.status().get("step", 0) > second, what="a checkpoint after the resume")
    time.sleep(chance.uniform(0, 0.2))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM, (tmp_path / "3.log").read_text()[-3000:]
    assert not list(run.path.glob(".*.tmp*")), "a resume cleans up torn writes"
    stopped = run.status()["step"]
    print(
        f"SIGKILL {delay:.2f} s after the first checkpoint (resumed from step {first}), "
        f"SIGKILL while writing step {second + 5}, SIGTERM at step {stopped}"
    )
    assert checkpoint_step(run) == stopped and run.status()["state"] == "stopped"
    assert run.status()["signal"] == "SIGTERM"
    log = (tmp_path / "3.log").read_text()
    # The resume says how the run was left: its process (SIGKILLed mid-write) is gone.
    assert f"[resume] {run.path} at step {second} (killed at step {second} (its process, pid" in log, log[-3000:]
    assert f"[stopped] {run.path}: stopped at step {stopped}; run the same command to resume" in log

    # 4. The same run, to the end: the metrics are those of the run that was never interrupted.
    assert train(make_spec(overrides)) == "done"
    assert metrics(run) == metrics(whole)
    assert [r["step"] for r in metrics(run)][-1] == 60
    final = torch.load(run.checkpoint, weights_only=False)
    assert final["warmup"]["ended_at"] is not None, "the warm-up should end within the run"
    for key, value in torch.load(whole.checkpoint, weights_only=False)["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key


def test_a_status_says_whether_its_process_still_runs():
    """status.json cannot say that its process was killed; its reader can, on the host that ran it."""
    here = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    running = {"state": "running", "step": 40, "steps": 60, "host": here}
    assert status_text({**running, "pid": os.getpid()}) == f"running at step 40 (pid {os.getpid()} on {here})"
    assert status_text({**running, "pid": int(dead.stdout)}) == (
        f"killed at step 40 (its process, pid {int(dead.stdout)} on {here}, is gone)"
    )
    assert "cannot tell" in status_text({**running, "pid": 1, "host": here + "-elsewhere"})
    assert status_text({"state": "stopped", "step": 40, "signal": "SIGINT"}) == "stopped at step 40 by SIGINT"
    assert status_text({}) == "new"


class Crash(BaseException):
    """Stands for a kill: not an Exception, so the run is not marked failed."""


def crash_after_checkpoint(monkeypatch, at_step: int) -> None:
    write = RunDir.write_checkpoint

    def write_then_crash(self, save):
        write(self, save)
        if checkpoint_step(self) == at_step:
            raise Crash

    monkeypatch.setattr(RunDir, "write_checkpoint", write_then_crash)


def test_warmup_ending_at_a_checkpoint_survives_a_resume(tiny_batches, tmp_path, monkeypatch):
    """The warm-up ends at step 4, the very step a checkpoint is written and the run is killed."""
    warmup = [
        "depth=8",
        "steps=12",
        "trainer.deterministic=true",
        "warmup.enabled=true",
        "warmup.check_every=4",
        "warmup.until_train_error=1",
    ]
    assert train(make_spec([*tiny_overrides(tiny_batches, tmp_path / "whole"), *warmup])) == "done"
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path / "killed"), *warmup])
    with monkeypatch.context() as patch:
        crash_after_checkpoint(patch, at_step=4)
        with pytest.raises(Crash):
            train(spec)
    assert train(spec) == "done"
    assert metrics(run_dir(tmp_path / "killed")) == metrics(run_dir(tmp_path / "whole"))
    assert torch.load(run_dir(tmp_path / "killed").checkpoint, weights_only=False)["warmup"]["ended_at"] == 4


def test_run_killed_after_its_last_checkpoint_is_done_on_rerun(tiny_batches, tmp_path, monkeypatch):
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8"])
    with monkeypatch.context() as patch:
        crash_after_checkpoint(patch, at_step=8)  # the final checkpoint is in place, "done" is not said yet
        with pytest.raises(Crash):
            train(spec)
    run = run_dir(tmp_path)
    assert run.status()["state"] == "running"
    before = run.metrics_file.read_text()
    assert train(spec) == "done"
    assert run.status()["state"] == "done" and run.metrics_file.read_text() == before


# --------------------------------------------------------------------------- sweeps and launchers


def started(output: str) -> list[str]:
    """The runs a process trained (fresh or resumed), as <arch-depth>/seed<k>."""
    return sorted(
        "/".join(line.split()[1].split("/")[-2:])
        for line in output.splitlines()
        if line.startswith(("[start]", "[resume]"))
    )


def test_a_sweep_on_joblib_extended_on_submitit(tiny_batches, tmp_path):
    """Two parallel runs through joblib; the sweep extended by one seed through submitit
    (a local process per job), which trains only the new run. (Re-running a finished sweep:
    test_train.py and the divergence test below.)"""
    out = tmp_path / "exp"
    common = ["depth=8", "name=life", *sweep_overrides(tiny_batches, out)]
    first = run_py("-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *common)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "2 runs: 2 done" in first.stdout  # the jobs found the sweep's outcomes folder
    assert "Joblib.Parallel(n_jobs=2" in first.stdout + first.stderr
    seed0 = run_dir(out, "resnet-8/seed0", "life")
    untouched = {p: p.stat().st_mtime_ns for p in seed0.path.iterdir()}

    extended = run_py("-m", "seed=0,1,2", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", *common)
    assert extended.returncode == 0, extended.stdout[-3000:] + extended.stderr[-3000:]
    assert "3 runs: 3 done" in extended.stdout
    logs = "".join(p.read_text() for p in (out / "life" / ".submitit").rglob("*_log.out"))
    assert started(logs) == ["resnet-8/seed2"] and logs.count("[skip]") == 2
    assert {p: p.stat().st_mtime_ns for p in seed0.path.iterdir()} == untouched
    assert len(list((out / "life" / ".outcomes").iterdir())) == 2, "one record of outcomes per launch"
    df = load_runs(out)
    assert sorted(df.run.unique()) == [f"life/resnet-8/seed{k}" for k in range(3)] and (df.status == "done").all()


def test_runtime_settings_may_change_in_an_existing_directory(tiny_batches, tmp_path):
    """What says how or where a run executes may change (a changed learned setting is refused:
    test_bad_inputs.py)."""
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8"])
    assert train(spec) == "done"
    run = run_dir(tmp_path)
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    assert train(make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8", "trainer.eval_batch_size=7"])) == "done"
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before


def test_divergence_failure_and_bad_input_do_not_stop_a_sweep(tiny_batches, tmp_path):
    """Four jobs: one trains, one diverges (lr=1e6 makes the loss NaN), one trains without its data cache
    (it cannot be written: a file stands where its folder should be; issue #25: said, not a failure), one is
    refused (depth=21)."""
    cases = tmp_path / "conf" / "case"
    cases.mkdir(parents=True)
    (tmp_path / "a-file").write_text("not a folder\n")
    for name, (settings, cache_dir) in {
        "ok": ("depth: 8", "null"),
        "diverge": ("depth: 14\noptim:\n  lr: 1.0e6", "null"),
        "fail": ("depth: 20", tmp_path / "a-file" / "cache"),
        "invalid": ("depth: 21", "null"),
    }.items():
        (cases / f"{name}.yaml").write_text(f"# @package _global_\n{settings}\ndata:\n  cache_dir: {cache_dir}\n")
    out = tmp_path / "exp"
    # the cases set data.cache_dir
    overrides = [o for o in sweep_overrides(tiny_batches, out) if not o.startswith("data.cache_dir=")]
    result = run_py(
        "-m",
        "--config-dir",
        str(tmp_path / "conf"),
        "+case=ok,diverge,fail,invalid",
        "name=mixed",
        *overrides,
        "steps=16",
        "log_every=2",
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 runs: 1 diverged, 2 done, 1 invalid" in result.stdout
    assert "[no cache] cannot write the decoded-data cache into" in result.stdout
    summary = result.stdout[result.stdout.index("4 runs:") :]
    assert "diverged resnet-14/seed0  training loss nan" in summary
    assert "invalid  resnet-21/seed0" in summary and "not 6n+2" in summary

    diverged = run_dir(out, "resnet-14/seed0", "mixed")
    assert diverged.status()["state"] == "diverged" and diverged.status()["step"] < 16, "a diverged run stops"
    assert run_dir(out, "resnet-20/seed0", "mixed").status()["state"] == "done"
    assert not (out / "mixed" / "resnet-21").exists(), "a refused run leaves no folder behind"
    df = load_runs(out)
    assert dict(df.groupby("run").status.first()) == {
        "mixed/resnet-8/seed0": "done",
        "mixed/resnet-14/seed0": "diverged",
        "mixed/resnet-20/seed0": "done",
    }

    # Re-running the sweep skips what is settled (done, diverged).
    again = run_py(
        "-m",
        "--config-dir",
        str(tmp_path / "conf"),
        "+case=ok,diverge,fail",
        "name=mixed",
        *overrides,
        "steps=16",
        "log_every=2",
    )
    assert again.returncode == 1 and "3 runs: 1 diverged, 2 done" in again.stdout
    assert again.stdout.count("[skip]") == 3


def test_two_sweeps_at_once_train_each_run_once(tiny_batches, tmp_path):
    """Two overlapping sweeps into one folder, and a reader of that folder, all at the same time."""
    out = tmp_path / "exp"
    common = [
        "depth=8",
        "name=shared",
        *sweep_overrides(tiny_batches, out),
        "steps=16",
        "log_every=2",
        "trainer.checkpoint_every=2",
    ]
    a = start_run_py("-m", "seed=0,1,2", *common, log=tmp_path / "a.log")
    b = start_run_py("-m", "seed=2,1,0", *common, log=tmp_path / "b.log")
    reads = 0
    while a.poll() is None or b.poll() is None:  # read everything while it is being written
        if (out / "shared").exists():
            load_runs(out)
            for checkpoint in (out / "shared").rglob("last.ckpt"):
                torch.load(checkpoint, map_location="cpu", weights_only=False)
            reads += 1
        time.sleep(0.05)  # leave the two cores to the writers
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    # a sweep that left a run to the other one is not done itself (exit 1, "running" in its summary)
    for sweep, log in ((a, "a.log"), (b, "b.log")):
        text = (tmp_path / log).read_text()
        assert sweep.returncode == (1 if " running" in text.split("\nsweep ")[-1] else 0), logs[-4000:]
    print(f"{reads} reads of the folder while two sweeps wrote it")
    assert started(logs) == [f"resnet-8/seed{k}" for k in range(3)], "each run trained exactly once"
    df = load_runs(out)
    assert (df.status == "done").all() and len(df) == 3 * (8 + 4 * 2)  # train rows every 2 steps, val and test every 4
    for k in range(3):
        run = run_dir(out, f"resnet-8/seed{k}", "shared")
        assert checkpoint_step(run) == 16 and not list(run.path.glob(".*.tmp*"))


# --------------------------------------------------------------------------- bad input


def test_a_run_that_fails_to_start_does_not_bind_its_directory(tiny_batches, tmp_path, monkeypatch):
    """A run that fails as training starts (here the optimizer: every setting it reads is checked
    before, so the failure is made): the run fails, and the next command trains."""

    def broken(self):
        raise ValueError("Invalid learning rate: -1")

    with monkeypatch.context() as patch:
        patch.setattr(Classifier, "configure_optimizers", broken)
        with pytest.raises(ValueError, match="Invalid learning rate"):
            train(make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8"]))
    run = run_dir(tmp_path)
    assert run.status()["state"] == "failed" and "Invalid learning rate" in run.error_file.read_text()
    assert not run.config_file.exists()
    assert train(make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8", "optim.lr=0.05"])) == "done"


def interrupted_run(tiny_batches, tmp_path, monkeypatch):
    """A run killed after its checkpoint at step 4 of 8."""
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8"])
    with monkeypatch.context() as patch:
        crash_after_checkpoint(patch, at_step=4)
        with pytest.raises(Crash):
            train(spec)
    return spec, RunDir(spec.run_dir)


class Submitted(Exception):
    """Raised where the launcher would wait for the Slurm jobs."""


def test_slurm_launcher_defaults_reach_sbatch(tmp_path, monkeypatch):
    """No Slurm here: stand-in srun and sbatch let hydra-submitit-launcher submit for real,
    and the batch script it hands to sbatch is read back."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/job.sh\necho "Submitted batch job 42"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=["hydra/launcher=slurm", f"out_dir={tmp_path}"], return_hydra_config=True
        )
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    monkeypatch.setattr(submitit.slurm.slurm.SlurmJob, "results", lambda job: (_ for _ in ()).throw(Submitted()))
    with pytest.raises(Submitted):
        launcher.launch([["seed=0"], ["seed=1"]], initial_job_idx=0)
    script = (tmp_path / "job.sh").read_text()
    # 4 h: most partitions accept it (a request over a partition's cap is rejected); requeues carry longer runs.
    for flag in (
        "--gpus-per-node=1",
        "--ntasks-per-node=1",
        "--time=240",
        "--signal=USR2@120",
        "--requeue",
        "--array=0-1",
    ):
        assert f"#SBATCH {flag}" in script, flag
    # On timeout, submitit calls the launcher's checkpoint(), which resubmits the same job: the run resumes.
    assert callable(getattr(launcher, "checkpoint", None)) and cfg.hydra.launcher.max_num_timeout > 0
