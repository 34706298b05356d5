"""The training path end to end on tiny data: run.py sweeps, run directories, load_runs (bad input: test_bad_inputs.py)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, make_config, make_spec, tiny_overrides

from resnet_repro import paper
from resnet_repro.config import ConfigError, resolve
from resnet_repro.module import lr_factor
from resnet_repro.results import load_runs
from resnet_repro.runs import RunDir
from resnet_repro.train import train, trained_with


def run_py(*args, cwd=REPO):
    # One thread: on a small shared machine, several threads per run mostly wait on each other.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_sweep_of_four_runs_through_run_py(tiny_batches, tmp_path):
    out = tmp_path / "exp"
    result = run_py("-m", "depth=8,14", "arch=plain,resnet", "name=pairs", *tiny_overrides(tiny_batches, out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 runs: 4 done" in result.stdout
    df = load_runs(out)
    assert sorted(df.run.unique()) == [f"pairs/{a}-{d}/seed0" for a in ("plain", "resnet") for d in (14, 8)]
    assert set(df.split) == {"train", "val", "test"}
    assert sorted(df.step.unique()) == [4, 8]
    assert (df.status == "done").all()
    assert df.error.between(0, 1).all() and df.lr.gt(0).all()
    for run in df.run.unique():
        folder = RunDir(out / run)
        assert folder.checkpoint.is_file() and folder.config_file.is_file()
    # Re-running the finished sweep trains nothing.
    again = run_py("-m", "depth=8,14", "arch=plain,resnet", "name=pairs", *tiny_overrides(tiny_batches, out))
    assert again.returncode == 0 and again.stdout.count("[skip]") == 4


def test_single_run_and_its_files(tiny_folders, tmp_path):
    spec = make_spec(["arch=resnet", "depth=8", "seed=1", *tiny_overrides(tiny_folders, tmp_path)])
    assert train(spec) == "done"
    run = RunDir(tmp_path / "default" / "resnet-8" / "seed1")
    assert run.status()["state"] == "done" and run.status()["step"] == 8
    rows = run.read_metrics()
    assert [(r["step"], r["split"]) for r in rows] == [(s, p) for s in (4, 8) for p in ("train", "val", "test")]
    # How it was computed, resolved (precision=auto means bf16 on one machine, fp32 on another). A resume in
    # the same environment adds nothing; one elsewhere adds its line and keeps the first.
    first = trained_with(spec)
    assert first["precision"] == spec.trainer.precision and first["device"] == "cpu" and first["compile"] == "false"
    assert run.environments() == [first]
    assert json.loads(run.trained_with_file.read_text()) == [first]  # structured data, read back as such
    run.record_environment(first)
    other = {"code": "abc", "precision": "32-true", "device": "cuda", "gpu": "A100", "compile": "true", "torch": "2"}
    run.record_environment(other)
    assert run.environments() == [first, other]


def test_option_b_has_its_own_directory(tiny_batches, tmp_path):
    spec = make_spec(["shortcut=B", "depth=8", *tiny_overrides(tiny_batches, tmp_path)])
    assert str(spec.run_dir).endswith("resnet-8-B/seed0") and spec.net.cli_name == "resnet-8-B"
    assert train(spec) == "done"
    assert load_runs(tmp_path).shortcut.unique().tolist() == ["B"]


def test_schedule_is_in_iterations_and_scales_with_steps():
    assert [lr_factor(s, 64000, [0.5, 0.75], 0.1) for s in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    assert lr_factor(499, 1000, [0.5, 0.75], 0.1) == 1 and lr_factor(500, 1000, [0.5, 0.75], 0.1) == pytest.approx(0.1)


def test_paper_defaults():
    cfg = make_config()
    schedule = (cfg.steps, cfg.batch_size, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay)
    assert schedule == (64000, 128, 0.1, 0.9, 1e-4)
    assert cfg.data.val_size == 5000 and list(cfg.optim.lr_milestones) == [0.5, 0.75]
    spec = resolve(cfg, check_data=False)
    drops = [round(m * spec.steps) for m in spec.optim.lr_milestones]
    assert spec.steps == paper.STEPS and drops == list(paper.LR_DROPS)
    assert not spec.warmup.enabled and make_spec(["depth=110"], check_data=False).warmup.enabled


# Bad settings, each refused in one line through the command line: tests/test_bad_inputs.py.


def test_cuda_is_refused_where_there_is_none(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(
        ConfigError, match="trainer.accelerator=cuda, but torch finds no CUDA device here; use trainer.accelerator=cpu"
    ):
        make_spec(["trainer.accelerator=cuda"], check_data=False)
    assert make_spec(["trainer.accelerator=auto"], check_data=False).trainer.accelerator == "cpu"


def test_python_m_resnet_repro_trains_from_another_directory(tiny_batches, tmp_path):
    """The installed package's command, run from anywhere: its configs come from inside the package."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "resnet_repro", "depth=8", *tiny_overrides(tiny_batches, "exp")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir(tmp_path / "exp" / "default" / "resnet-8" / "seed0")
    assert run.status()["state"] == "done" and json.loads(run.trained_with_file.read_text())[0]["device"] == "cpu"


def test_progress_in_a_job_log_is_a_line_every_tenth(tiny_batches, tmp_path, monkeypatch, capsys):
    """Not a terminal (joblib's, submitit's and Slurm's logs): ten lines per run, not a redrawn bar."""
    from resnet_repro.trainer_settings import _progress

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert _progress("auto") == "bar" and _progress(True) == "bar" and _progress(False) == "off"
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert _progress("auto") == "lines", "a Slurm job's output is a file even under srun --pty"
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    spec = make_spec(
        [*tiny_overrides(tiny_batches, tmp_path), "depth=8", "steps=20", "eval_every=10", "trainer.progress_bar=auto"]
    )
    assert spec.trainer.progress_bar == "lines"  # output to a file, as joblib's workers have it
    assert train(spec) == "done"
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[progress]")]
    assert [line.split()[3] for line in lines] == [f"{s}/20" for s in (2, 4, 6, 8, 10, 12, 14, 16, 18, 20)]
    assert "train_err=" in lines[-1] and "it/s" in lines[-1]


def test_tensorboard_logger(tiny_batches, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8", "logger=tensorboard"])
    assert train(spec) == "done"
    events = EventAccumulator(str(spec.run_dir / "tensorboard")).Reload()
    rows = RunDir(spec.run_dir).read_metrics()
    for split in ("train", "val", "test"):
        logged = [(e.step, round(e.value, 5)) for e in events.Scalars(f"{split}/error")]
        assert logged == [(r["step"], round(float(r["error"]), 5)) for r in rows if r["split"] == split]
    assert "lr" in events.Tags()["scalars"] and "test/loss" in events.Tags()["scalars"]
    # Asked for but not installed: one line naming the fix, before any work.
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "tensorboard" else object())
    with pytest.raises(ConfigError, match=r"logger=tensorboard needs the tensorboard package: pip install tensorboard"):
        make_spec([*tiny_overrides(tiny_batches, tmp_path), "logger=tensorboard"])


def test_weight_snapshots_at_fractions_of_the_schedule(tiny_batches, tmp_path):
    """trainer.snapshots keeps the weights at fractions of the schedule (8 steps: 0, 1%->0, 10%->1, 50%->4,
    100%->8): step 0 is the seed's initialisation, the last is the final checkpoint's weights."""
    import pytorch_lightning as pl
    import torch

    spec = make_spec(["arch=plain", "depth=8", *tiny_overrides(tiny_batches, tmp_path)])
    assert spec.trainer.snapshots == (0.0, 0.01, 0.1, 0.5, 1.0)
    assert train(spec) == "done"
    run = RunDir(spec.run_dir)
    snapshots = run.snapshots()
    assert sorted(snapshots) == [0, 1, 4, 8]
    weights = {s: torch.load(p, weights_only=True) for s, p in snapshots.items()}
    assert all(w["step"] == s for s, w in weights.items())
    final = torch.load(run.checkpoint, weights_only=False)["state_dict"]
    for key, value in weights[8]["state_dict"].items():
        assert torch.equal(value, final[key]), key
    pl.seed_everything(spec.seed, verbose=False)
    init = spec.net.build().state_dict()
    assert all(torch.equal(weights[0]["state_dict"][f"model.{k}"], v) for k, v in init.items())
    first_conv = next(k for k in init if k.endswith("weight") and init[k].dim() == 4)
    assert not torch.equal(weights[4]["state_dict"][f"model.{first_conv}"], init[first_conv])
    # None kept when asked for none; a fraction outside [0, 1] is refused before any work.
    none = make_spec(
        ["arch=plain", "depth=8", "trainer.snapshots=[]", "name=none", *tiny_overrides(tiny_batches, tmp_path)]
    )
    assert train(none) == "done" and RunDir(none.run_dir).snapshots() == {}
    with pytest.raises(ConfigError, match=r"trainer.snapshots=\[2\] must be a list of fractions"):
        make_spec(["trainer.snapshots=[2]", *tiny_overrides(tiny_batches, tmp_path)])
