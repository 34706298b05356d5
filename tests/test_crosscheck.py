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
