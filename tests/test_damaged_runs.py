"""Resume validates what it loads: damaged metrics, a checkpoint with NaN in it, or files that disagree are
refused in one line naming the file and the fix, and nothing is deleted or overwritten."""

from __future__ import annotations

import pytest
import torch
from test_resilience import interrupted_run

from resnet_repro.runs import RunFileError
from resnet_repro.train import train


def refused(spec, run) -> str:
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with pytest.raises(RunFileError) as error:
        train(spec)
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before, "nothing is touched"
    message = str(error.value)
    assert "\n" not in message
    return message


def replace_in_metrics(run, line: int, column: str, value: str) -> None:
    rows = run.metrics_file.read_text().splitlines()
    header = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[header.index(column)] = value
    rows[line - 1] = ",".join(cells)
    run.metrics_file.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    "column, value, says",
    [
        ("error", "abc", "not a number"),
        ("error", "nan", "not finite"),
        ("error", "1.5", "out of range"),
        ("lr", "inf", "not finite"),
        ("elapsed_s", "", "not a number"),
        ("split", "training", "split 'training' is not one of train, val, test"),
        ("step", "-x", "not a number"),
    ],
)
def test_a_damaged_metrics_value_is_refused_naming_the_line(tiny_batches, tmp_path, monkeypatch, column, value, says):
    spec, run = interrupted_run(tiny_batches, tmp_path, monkeypatch)
    replace_in_metrics(run, 3, column, value)
    message = refused(spec, run)
    assert "metrics.csv" in message and "line 3" in message and says in message and "restore it" in message


def test_steps_that_go_back_are_refused(tiny_batches, tmp_path, monkeypatch):
    spec, run = interrupted_run(tiny_batches, tmp_path, monkeypatch)
    replace_in_metrics(run, len(run.metrics_file.read_text().splitlines()), "step", "0")
    assert "comes after step" in refused(spec, run)


def test_a_checkpoint_holding_nan_is_refused(tiny_batches, tmp_path, monkeypatch):
    spec, run = interrupted_run(tiny_batches, tmp_path, monkeypatch)
    checkpoint = torch.load(run.checkpoint, weights_only=False)
    name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][name].view(-1)[0] = float("nan")
    torch.save(checkpoint, run.checkpoint)
    message = refused(spec, run)
    assert "last.ckpt" in message and name in message and "NaN or inf" in message and "move it away" in message


def test_a_checkpoint_past_the_runs_steps_is_refused(tiny_batches, tmp_path, monkeypatch):
    spec, run = interrupted_run(tiny_batches, tmp_path, monkeypatch)
    checkpoint = torch.load(run.checkpoint, weights_only=False)
    checkpoint["global_step"] = 10_000
    torch.save(checkpoint, run.checkpoint)
    assert "past this run's steps=8" in refused(spec, run)


def test_metrics_that_stop_short_of_the_checkpoint_are_refused(tiny_batches, tmp_path, monkeypatch):
    spec, run = interrupted_run(tiny_batches, tmp_path, monkeypatch)
    run.metrics_file.write_text(run.metrics_file.read_text().splitlines()[0] + "\n")  # the rows are lost
    message = refused(spec, run)
    assert "ends at step 0 but last.ckpt is at step 4" in message


def test_an_intact_interrupted_run_still_resumes(tiny_batches, tmp_path, monkeypatch):
    spec, run = interrupted_run(tiny_batches, tmp_path, monkeypatch)
    assert train(spec) == "done"
