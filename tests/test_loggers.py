"""The `logger` config group: none by default (metrics.csv only, as before), one or several of csv, tensorboard,
wandb, mlflow; a missing package is one line before any work. W&B runs offline (WANDB_MODE=offline) and MLflow
writes to a local file store: no network, no account."""

from __future__ import annotations

import csv

import pytest
from conftest import make_config, make_spec, tiny_overrides

from resnet_repro.config import ConfigError
from resnet_repro.runs import RunDir
from resnet_repro.train import train


def test_no_logger_by_default(tiny_batches, tmp_path):
    cfg = make_config(tiny_overrides(tiny_batches, tmp_path))
    assert "logger" not in cfg
    assert "logger" not in make_spec(tiny_overrides(tiny_batches, tmp_path)).config


def test_several_loggers_at_once(tiny_batches, tmp_path):
    cfg = make_config([*tiny_overrides(tiny_batches, tmp_path), "logger=[csv,mlflow]"])
    assert set(cfg.logger) == {"csv", "mlflow"} and cfg.logger.mlflow.experiment == "resnet-repro"


@pytest.mark.parametrize("name, package", [("wandb", "wandb"), ("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_a_missing_package_is_one_line_naming_pip(tiny_batches, tmp_path, monkeypatch, name, package):
    real = __import__("importlib.util").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda n, *a: None if n == package else real(n, *a))
    with pytest.raises(ConfigError) as caught:
        make_spec([*tiny_overrides(tiny_batches, tmp_path), f"logger=[csv,{name}]"])
    message = str(caught.value)
    assert message.startswith(f"logger={name} needs the {package} package: pip install {package}")
    assert f"resnet-repro[{name}]" in message and "logger=[csv]" in message and "\n" not in message


def test_csv_logger_writes_lightnings_layout(tiny_batches, tmp_path):
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8", "logger=csv"])
    assert train(spec) == "done"
    with open(spec.run_dir / "csv" / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    rows = RunDir(spec.run_dir).read_metrics()
    tests = [(int(r["step"]), round(float(r["test/error"]), 5)) for r in logged if r.get("test/error")]
    assert tests == [(r["step"], round(float(r["error"]), 5)) for r in rows if r["split"] == "test"]
    assert (spec.run_dir / "csv" / "hparams.yaml").is_file()


def test_wandb_offline(tiny_batches, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    spec = make_spec([*tiny_overrides(tiny_batches, tmp_path), "depth=8", "logger=wandb"])
    assert train(spec) == "done"
    runs = list((spec.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one offline W&B run, in the run's directory"
    (records,) = runs[0].glob("*.wandb")  # W&B's record file, what `wandb sync` uploads
    data = records.read_bytes()
    assert b"test/error" in data and b"train/loss" in data and b"optim.lr" in data


def test_mlflow_file_store(tiny_batches, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3.x keeps the file store only on request
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    spec = make_spec(
        [*tiny_overrides(tiny_batches, tmp_path), "depth=8", "logger=mlflow", f"logger.mlflow.tracking_uri={store}"]
    )
    assert train(spec) == "done"
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("resnet-repro")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == spec.run_id and run.data.params["depth"] == "8"
    history = client.get_metric_history(run.info.run_id, "test/error")
    rows = RunDir(spec.run_dir).read_metrics()
    assert [m.step for m in history] == [r["step"] for r in rows if r["split"] == "test"]
