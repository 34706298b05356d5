"""The dry run: every run of a sweep with its directory, state, device, precision, compile, steps and an
estimate; nothing trained or written; bad settings refused with the run's own one-line errors."""

from __future__ import annotations

import pytest
from conftest import REPO, tiny_overrides
from test_resilience import interrupted_run
from test_train import run_py

from resnet_repro.plan import plan
from resnet_repro.runs import status_text


def planned(args: list[str], capsys, measure: bool = False) -> tuple[int, list[str], str]:
    status = plan(args, measure=measure)
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def files(folder) -> list:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_quick_preset_plan(tiny_batches, tmp_path, capsys):
    status, lines, err = planned(
        ["-m", "experiment=quick", f"data.root={tiny_batches}", "data.subset=tiny", f"out_dir={tmp_path}"], capsys
    )
    assert status == 0 and err == ""
    assert lines[0].startswith("plan: 4 runs, launcher BasicLauncher")
    rows = [line.split() for line in lines if str(tmp_path) in line]
    assert sorted(r[0].split("quick/")[1] for r in rows) == [
        "plain-20/seed0",
        "plain-56/seed0",
        "resnet-20/seed0",
        "resnet-56/seed0",
    ]
    for row in rows:
        assert (
            row[1:3] == ["new", "cpu"] and row[3] in ("bf16-mixed", "32-true") and row[4] == "eager" and row[5] == "600"
        )
    assert files(tmp_path) == [], "a plan writes nothing"


def test_figure6_sweep_plan_with_measured_estimates(tiny_batches, tmp_path, capsys):
    args = [
        "-m",
        "arch=plain,resnet",
        "depth=8,14",
        "name=fig6",
        "trainer.compile=true",
        *tiny_overrides(tiny_batches, tmp_path),
    ]
    status, lines, _ = planned(args, capsys, measure=True)
    rows = [line.split() for line in lines if "/fig6/" in line]
    assert status == 0 and len(rows) == 4
    assert all(r[4:6] == ["default", "8"] and r[6].startswith("~") for r in rows), rows
    assert lines[-1].startswith("total: ~") and "4 nets" in lines[-1]
    assert files(tmp_path) == []


def test_plan_states_of_existing_runs(tiny_batches, tmp_path, monkeypatch, capsys):
    _, run = interrupted_run(tiny_batches, tmp_path, monkeypatch)
    capsys.readouterr()  # the interrupted run's own output
    args = tiny_overrides(tiny_batches, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in files(run.path)}
    status, lines, _ = planned(["-m", "depth=8,14", "arch=resnet", *args], capsys)
    states = {line.split()[0].split("/")[-2]: " ".join(line.split()[1:5]) for line in lines if "/seed0" in line}
    assert status == 0 and states["resnet-8"].startswith("resume at step 4") and states["resnet-14"].startswith("new")
    resumed = next(line for line in lines if "resnet-8/seed0" in line)
    assert f"resume at step 4 ({status_text(run.status())})" in resumed, resumed  # how it was left
    assert {p: p.stat().st_mtime_ns for p in files(run.path)} == before, "the run directory is only read"
    run.set_status("done", step=8, steps=8)
    _, lines, _ = planned(["depth=8", *args], capsys)
    assert any(line.split()[1:2] == ["done"] for line in lines if "resnet-8/seed0" in line)


@pytest.mark.parametrize("args", [["depth=21"], ["-m", "depth=20,21"], ["dept=20"], ["trainer.compile=banana"]])
def test_bad_settings_fail_in_the_plan_as_in_a_run(tiny_batches, tmp_path, capsys, args):
    status, _, err = planned([*args, f"data.root={tiny_batches}", "data.subset=tiny", f"out_dir={tmp_path}"], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert any(m in err for m in ("depth=21 is not 6n+2", "did you mean depth=20", "trainer.compile=banana is unknown"))
    assert files(tmp_path) == []


def test_dry_run_from_the_command_line(tiny_batches, tmp_path):
    for switch in ("dry_run=true", "+dry_run=true"):
        result = run_py(
            "-m",
            "experiment=quick",
            "batch_size=16",
            f"data.root={tiny_batches}",
            "data.subset=tiny",  # the tiny data is not CIFAR-10's counts: the plan refuses it as a run would
            f"out_dir={tmp_path}",
            switch,
            cwd=REPO,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "plan: 4 runs" in result.stdout and result.stdout.count(" new ") == 4
    bad = run_py("depth=21", "dry_run=true", f"out_dir={tmp_path}")
    assert bad.returncode == 2 and "not 6n+2" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert files(tmp_path) == []
