"""benchmarks/crosscheck.py, the independent public-style loop, on tiny data: it trains, records and summarises."""

import json
import subprocess
import sys

from conftest import REPO


def test_crosscheck_trains_and_records(tiny_batches, tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "crosscheck.py"), "--data-root", str(tiny_batches),
         "--depth", "8", "--steps", "4", "--eval-every", "2", "--val-size", "20", "--workers", "0", "--threads", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, env={"RESNET_REPRO_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "resnet-8-4"
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [[s, p] for s in ("2", "4") for p in ("val", "test")]
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 4 and 0 <= result["final_test_error"] <= 1
    assert "no step 4 in" in done.stdout  # nothing to compare with: no README claiming a comparison
    again = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "crosscheck.py"), "--data-root", str(tiny_batches),
         "--depth", "8", "--steps", "4", "--out", str(tmp_path)], capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 2 and "holds a finished cross-check" in again.stderr  # never overwritten


def test_crosscheck_resumes_where_it_stopped(tiny_batches, tmp_path):
    """Stopped after its checkpoint at step 100 and run again, it continues there and computes what an
    uninterrupted run computes (one thread, no workers: the augmentations draw from the restored RNG)."""
    args = [sys.executable, str(REPO / "benchmarks" / "crosscheck.py"), "--data-root", str(tiny_batches), "--depth", "8",
            "--steps", "200", "--eval-every", "100", "--checkpoint-every", "100", "--val-size", "20", "--workers", "0",
            "--threads", "1", "--out", str(tmp_path)]  # fmt: skip
    env = {"RESNET_REPRO_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    whole = subprocess.run([*args, "--name", "whole"], capture_output=True, text=True, env=env)
    stopped = subprocess.run([*args, "--name", "parts", "--stop-at", "100"], capture_output=True, text=True, env=env)
    assert whole.returncode == 0 and stopped.returncode == 0, whole.stderr[-2000:] + stopped.stderr[-2000:]
    parts = tmp_path / "parts"
    assert (parts / "checkpoint.pt").is_file() and not (parts / "result.json").exists()
    resumed = subprocess.run([*args, "--name", "parts"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0 and "resuming" in resumed.stdout, resumed.stderr[-2000:]
    assert not (parts / "checkpoint.pt").exists()  # finished: the result and the metrics are the record

    def errors(name):
        return [r.split(",")[:3] for r in (tmp_path / name / "metrics.csv").read_text().splitlines()]

    assert errors("parts") == errors("whole")
    assert [r[0] for r in errors("whole")[1:]].count("100") == 3  # train, val, test once each
