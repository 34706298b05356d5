"""benchmarks/precision_compare.py on hand-made runs: it pairs seeds, measures the noise, judges, never overwrites."""

import json

import numpy as np
import pytest
from test_report import fake_run

from benchmarks import precision_compare


def runs_in(root, precision, finals, seeds=(0, 1, 2), overrides=()):
    for seed, final in zip(seeds, finals):
        errors = {"train": [0.5, 0.3, 0.2, 0.1], "test": [0.5, 0.3, 0.2, final]}
        run = fake_run(root, "resnet", 20, seed, errors, steps=4000, overrides=overrides)
        run.trained_with_file.write_text(json.dumps([{"code": "c0ffee", "precision": precision, "device": "cpu"}]))


@pytest.fixture
def predictions(monkeypatch):
    """Test predictions from the run's final error: the first images wrong, as many as its error says."""

    def fake(run, data_root=None):
        final = {"hand/resnet-20/seed0": 0.10, "hand/resnet-20/seed1": 0.11, "hand/resnet-20/seed2": 0.12}
        error = final.get(run["run"], 0.0) + (0.02 if "bf16" in str(run["path"]) else 0.0)
        labels = np.zeros(1000, dtype=int)
        return list((np.arange(1000) < round(error * 1000)).astype(int)), list(labels)

    monkeypatch.setattr(precision_compare, "run_test_predictions", fake)


def test_a_difference_beyond_its_noise_and_one_within(tmp_path, predictions):
    runs_in(tmp_path / "fp32", "32-true", [0.10, 0.11, 0.12])
    runs_in(tmp_path / "bf16", "bf16-mixed", [0.12, 0.13, 0.14])  # 2 points higher on every seed
    out = tmp_path / "out"
    args = ["--fp32", str(tmp_path / "fp32"), "--bf16", str(tmp_path / "bf16"), "--out", str(out)]
    assert precision_compare.main(args) == 0
    text = (out / "comparison.md").read_text()
    test_row = next(line for line in text.splitlines() if line.startswith("| test error at the end"))
    assert "| 11.00% | 13.00% | +2.00 |" in test_row and "bf16 higher, beyond noise" in test_row
    assert "paired by image over 1,000" in test_row
    train_row = next(line for line in text.splitlines() if line.startswith("| training error"))
    assert "+0.00" in train_row and "within noise" in train_row  # the same training curves
    assert (out / "comparison.png").is_file() and len((out / "comparison.csv").read_text().splitlines()) == 7
    assert precision_compare.main(args) == 2  # a comparison is never overwritten


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda root: runs_in(root / "bf16", "32-true", [0.1, 0.1]), "trained in 32-true, not bf16-mixed"),
        (lambda root: runs_in(root / "bf16", "bf16-mixed", [0.1], seeds=(5,)), "train at least two seeds"),
        (lambda root: runs_in(root / "fp32", "32-true", [0.1, 0.1], overrides=["shortcut=B"]), "paper's nets"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(tmp_path, predictions, capsys, make, words):
    runs_in(tmp_path / "fp32", "32-true", [0.10, 0.11, 0.12])
    make(tmp_path)
    net = "resnet-20-B" if "paper's" in words else "resnet-20"
    args = ["--fp32", str(tmp_path / "fp32"), "--bf16", str(tmp_path / "bf16"), "--out", str(tmp_path / "out")]
    args += ["--net", net]
    assert precision_compare.main(args) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
