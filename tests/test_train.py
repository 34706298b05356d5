"""The training path end to end on tiny data: run.py sweeps, run directories, load_runs, bad input."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, make_config, tiny_overrides

from resnet_repro.module import lr_factor
from resnet_repro.results import load_runs
from resnet_repro.runs import RunDir, code_commit
from resnet_repro.train import ConfigError, check_config, precision, train, warmup_on


def run_py(*args, cwd=REPO):
    # One thread: on a small shared machine, several threads per run mostly wait on each other.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, env=env, capture_output=True, text=True)


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
    cfg = make_config(["arch=resnet", "depth=8", "seed=1", *tiny_overrides(tiny_folders, tmp_path)])
    assert train(cfg) == "done"
    run = RunDir(tmp_path / "default" / "resnet-8" / "seed1")
    assert run.status()["state"] == "done" and run.status()["step"] == 8
    rows = run.read_metrics()
    assert [(r["step"], r["split"]) for r in rows] == [(s, p) for s in (4, 8) for p in ("train", "val", "test")]
    # How it was computed, resolved (precision=auto means bf16 on one machine, fp32 on another). A resume in
    # the same environment adds nothing; one elsewhere adds its line and keeps the first.
    first = f"code {code_commit()}, {precision(cfg)} on cpu, torch {torch.__version__}"
    assert run.environments() == [first]
    run.record_environment(first)
    run.record_environment("code abc, 32-true on cuda, torch 2")
    assert run.environments() == [first, "code abc, 32-true on cuda, torch 2"]


def test_option_b_has_its_own_directory(tiny_batches, tmp_path):
    cfg = make_config(["shortcut=B", "depth=8", *tiny_overrides(tiny_batches, tmp_path)])
    assert cfg.run_dir.endswith("resnet-8-B/seed0")
    assert train(cfg) == "done"
    assert load_runs(tmp_path).shortcut.unique().tolist() == ["B"]


def test_schedule_is_in_iterations_and_scales_with_steps():
    assert [lr_factor(s, 64000, [0.5, 0.75], 0.1) for s in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    assert lr_factor(499, 1000, [0.5, 0.75], 0.1) == 1 and lr_factor(500, 1000, [0.5, 0.75], 0.1) == pytest.approx(0.1)


def test_paper_defaults():
    cfg = make_config()
    assert (cfg.steps, cfg.batch_size, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (64000, 128, 0.1, 0.9, 1e-4)
    assert cfg.data.val_size == 5000 and list(cfg.optim.lr_milestones) == [0.5, 0.75]
    assert not warmup_on(cfg) and warmup_on(make_config(["depth=110"]))


@pytest.mark.parametrize(
    "override, message",
    [
        ("depth=21", r"depth=21 is not 6n\+2.*20, 32, 44, 56, 110, 1202"),
        ("arch=vgg", "use arch=plain or arch=resnet"),
        ("steps=0", "steps=0 must be a positive"),
        ("batch_size=-1", "batch_size=-1 must be a positive"),
        ("eval_every=100", "eval_every=100 is larger than steps=8"),
    ],
)
def test_bad_settings_fail_before_any_work(tiny_batches, tmp_path, override, message):
    cfg = make_config([*tiny_overrides(tiny_batches, tmp_path), override])
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)
    assert not (tmp_path / "default").exists()


def test_bad_input_is_one_line_from_the_command_line(tmp_path):
    result = run_py("depth=21", f"out_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "not 6n+2" in result.stderr
    missing = run_py(f"data.root={tmp_path / 'nowhere'}", f"out_dir={tmp_path}")
    assert missing.returncode == 2 and "data.download=true" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
