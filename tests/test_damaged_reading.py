"""Reading runs never breaks on one bad run: each kind of damage beside healthy runs leaves the healthy ones
reported and the damaged one listed (which file, why, the fix), with exit status 1; Figure 7's numbers are
cached per run, so a second report makes no forward pass."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import make_config, write_batches
from omegaconf import OmegaConf
from test_bad_inputs import DAMAGED_READING, HEALTHY
from test_report import fake_run

from resnet_repro import analysis
from resnet_repro.models import build_model
from resnet_repro.report import main, make_report
from resnet_repro.results import DamagedRunWarning, load_results, load_runs
from resnet_repro.runs import RunDir


@pytest.mark.parametrize("kind", DAMAGED_READING)
def test_a_damaged_run_is_listed_and_the_healthy_ones_read(tmp_path, kind):
    """What load_results and load_runs make of each damage; what the report says of it (exit 1, the file
    named): tests/test_bad_inputs.py, which holds the list."""
    damage, file, reason, fix = DAMAGED_READING[kind]
    for depth in (20, 56):
        fake_run(tmp_path, "plain", depth, 0, HEALTHY)
    bad = fake_run(tmp_path, "plain", 20, 1, HEALTHY)
    damage(bad)

    results = load_results(tmp_path)
    assert sorted(results.runs.run) == ["hand/plain-20/seed0", "hand/plain-56/seed0"]
    assert sorted(results.curves.run.unique()) == ["hand/plain-20/seed0", "hand/plain-56/seed0"]
    [skipped] = results.skipped
    assert (skipped.run, skipped.file) == ("hand/plain-20/seed1", file)
    assert reason in skipped.reason and fix in skipped.reason and "\n" not in skipped.reason
    assert str(bad.path) in skipped.reason  # which run's file, as a path to open

    with pytest.warns(DamagedRunWarning, match="left out 1 damaged run") as warned:
        curves = load_runs(tmp_path)
    assert "hand/plain-20/seed1" in str(warned[0].message)
    pd.testing.assert_frame_equal(curves, results.curves)


def test_a_healthy_folder_exits_0_and_says_nothing_was_left_out(tmp_path, capsys):
    for depth in (20, 56):
        fake_run(tmp_path, "plain", depth, 0, HEALTHY)
    assert main([str(tmp_path), "-o", str(tmp_path / "report"), "--no-figure7"]) == 0
    assert "left out" not in capsys.readouterr().out
    assert "## Left out" not in (tmp_path / "report" / "README.md").read_text()
    assert json.loads((tmp_path / "report" / "provenance.json").read_text())["left_out"] == []


def test_folders_that_are_not_runs_yet_are_not_damage(tmp_path):
    """A run writes config.yaml first: a folder holding only that is a run starting (or one refused), not damage."""
    fake_run(tmp_path, "plain", 20, 0, HEALTHY)
    starting = fake_run(tmp_path, "plain", 56, 0, HEALTHY)
    for path in (starting.metrics_file, starting.status_file, starting.trained_with_file, starting.dataset_file):
        path.unlink()
    (tmp_path / "hand" / "report").mkdir()
    (tmp_path / "hand" / "report" / "curves.csv").write_text("step\n1\n")
    results = load_results(tmp_path)
    assert results.runs.run.tolist() == ["hand/plain-20/seed0"] and results.skipped == []


def test_only_damaged_runs_is_nothing_to_report_and_exits_1(tmp_path, capsys):
    fake_run(tmp_path, "plain", 20, 0, HEALTHY).status_file.write_text("{")
    assert main([str(tmp_path), "-o", str(tmp_path / "report")]) == 1
    out = capsys.readouterr().out
    assert "skipped everything: no runs with metrics" in out and "left out run hand/plain-20/seed0" in out


def test_final_weights_that_cannot_be_read_are_left_out_with_the_fix(tmp_path, tiny_batches):
    good = collected_run(tmp_path, "plain", 8, tiny_batches)
    bad = collected_run(tmp_path, "resnet", 8, tiny_batches)
    bad.weights_file.write_bytes(b"not a torch file")
    report = make_report(tmp_path, tmp_path / "report", verbose=False)
    # Figure 7 and the gradient-flow / F(x)+x figures need the weights: each says it left the run out
    assert [line.split(":")[0] for line in report.left_out][0] == "Figure 7 resnet-8 seed 0 (hand/resnet-8/seed0)"
    assert f"cannot read checkpoint {bad.weights_file}" in report.left_out[0] and "retrain" in report.left_out[0]
    assert pd.read_csv(tmp_path / "report" / "figure7.csv").run.unique().tolist() == [
        str(good.path.relative_to(tmp_path))
    ]
    assert not report.complete


# --------------------------------------------------------------------------- Figure 7's cache


def collected_run(out, arch, depth, data_root, seed=0) -> RunDir:
    """A finished run as `campaign collect` keeps it (weights.pt, no checkpoint), on the tiny data set."""
    cfg = make_config(
        [
            f"arch={arch}",
            f"depth={depth}",
            f"seed={seed}",
            "steps=8",
            f"out_dir={out}",
            "name=hand",
            f"data.root={data_root}",
            "data.cache_dir=null",
            "data.val_size=20",
            "eval_every=4",
        ]
    )
    run = RunDir(cfg.run_dir)
    run.path.mkdir(parents=True)
    run.config_file.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    rows = [
        {"step": s, "split": sp, "error": 0.5, "loss": 1.0, "lr": 0.1, "elapsed_s": 1.0}
        for s in (4, 8)
        for sp in ("train", "val", "test")
    ]
    run.write_metrics(rows)
    run.set_status("done", step=8, steps=8)
    torch.manual_seed(depth + seed)
    model = build_model(arch, depth)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, run.weights_file)
    return run


@pytest.fixture
def count_forward_passes(monkeypatch):
    calls = []
    response_stds = analysis.response_stds
    monkeypatch.setattr(analysis, "response_stds", lambda *a, **k: calls.append(1) or response_stds(*a, **k))
    return calls


def test_a_second_report_reads_figure7_from_the_cache_without_a_forward_pass(
    tmp_path, tiny_batches, count_forward_passes, monkeypatch
):
    runs = [collected_run(tmp_path, arch, 8, tiny_batches) for arch in ("plain", "resnet")]
    make_report(tmp_path, tmp_path / "first", verbose=False)
    assert len(count_forward_passes) == 2
    for run in runs:
        cache = json.loads((run.path / analysis.CACHE_FILE).read_text())
        assert cache["key"]["weights"] == "weights.pt" and len(cache["key"]["weights_sha256"]) == 64
        assert len(cache["stds"]) == 7
    first = pd.read_csv(tmp_path / "first" / "figure7.csv")

    # Again, with the weights touched (a git clone's new dates) and no data reachable: nothing is computed.
    for run in runs:
        run.weights_file.touch()
    monkeypatch.setattr(analysis, "load_cifar10", lambda *a, **k: pytest.fail("the data was loaded"))
    report = make_report(tmp_path, tmp_path / "second", verbose=False)
    assert len(count_forward_passes) == 2 and report.complete, report.left_out
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "second" / "figure7.csv"), first)


def test_figure7s_cache_knows_the_data_by_its_contents_wherever_it_lies(tmp_path, tiny_batches, count_forward_passes):
    collected_run(tmp_path, "plain", 8, tiny_batches)
    row = load_results(tmp_path).runs.iloc[0]
    first = analysis.run_response_stds(row)
    # the same data at another path (another machine, a clone beside another shared/), spelled relatively: read back
    moved = Path(shutil.copytree(tiny_batches, tmp_path / "elsewhere" / tiny_batches.name))
    spelled = os.path.relpath(moved, Path.cwd())
    assert analysis.run_response_stds(row, data_root=spelled) == first and len(count_forward_passes) == 1
    # other data at that path: computed again (a path key would have read back numbers of the old data)
    shutil.rmtree(moved)
    write_batches(moved)
    test_batch = moved / "cifar-10-batches-py" / "test_batch"
    batch = pickle.loads(test_batch.read_bytes())
    batch["data"] = 255 - batch["data"]
    test_batch.write_bytes(pickle.dumps(batch))
    assert analysis.run_response_stds(row, data_root=moved) != first and len(count_forward_passes) == 2
    # no data at hand: the numbers cached from data of that name are read back, as they cannot be computed
    shutil.rmtree(moved)
    assert analysis.run_response_stds(row, data_root=moved) != first and len(count_forward_passes) == 2
    with pytest.raises(analysis.Unavailable):  # data of another name: nothing cached holds, nothing to compute from
        analysis.run_response_stds(row, data_root=tmp_path / "nothing-here")


def test_figure7s_cache_is_recomputed_when_what_it_was_made_from_changes(tmp_path, tiny_batches, count_forward_passes):
    run = collected_run(tmp_path, "plain", 8, tiny_batches)
    row = load_results(tmp_path).runs.iloc[0]
    first = analysis.run_response_stds(row)
    assert analysis.run_response_stds(row) == first and len(count_forward_passes) == 1

    analysis.run_response_stds(row, max_images=10)  # other images
    assert len(count_forward_passes) == 2
    analysis.run_response_stds(row)  # and back: the cache holds one key, the last
    assert len(count_forward_passes) == 3

    state = torch.load(run.weights_file, weights_only=True)
    state["state_dict"]["model.conv1.weight"] *= 2  # other weights, same size
    torch.save(state, run.weights_file)
    assert analysis.run_response_stds(row) != first and len(count_forward_passes) == 4

    (run.path / analysis.CACHE_FILE).write_text("{ torn")  # a damaged cache is recomputed and rewritten
    analysis.run_response_stds(row)
    assert len(count_forward_passes) == 5
    assert json.loads((run.path / analysis.CACHE_FILE).read_text())["stds"]
