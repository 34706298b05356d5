"""The benchmark runs end to end (on generated images, tiny timings) and never overwrites a result.

Speed itself is measured by `python -m resnet_repro.bench`, never asserted here.
"""

import csv

import pytest

from resnet_repro.bench import main

TINY = ["--depths", "8", "--steps", "2", "--warmup", "1", "--repeats", "1", "--ref-workers", "0"]


def test_bench_prints_and_writes_the_table_of_all_three_paths(tmp_path, capsys):
    out = tmp_path / "bench.md"
    table = main([*TINY, "--out", str(out)])
    assert out.read_text() == table and table in capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("| net |"))
    assert "(a) project, Lightning" in header and "(b) bare loop" in header and "(c) reference, 0 workers" in header
    row = next(line for line in table.splitlines() if line.startswith("| ResNet-8 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert all(float(c) > 0 for c in cells[1:])  # images/s of a, b, c, then a/c and a/b
    for key in ("- cpu:", "- cores:", "- gpu:", "- torch:", "- data: generated images"):
        assert key in table
    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["path"] for r in rows) == ["(a) project, Lightning", "(b) bare loop", "(c) reference, 0 workers"]

    # An existing result is refused before any work starts.
    with pytest.raises(SystemExit) as refused:
        main([*TINY, "--out", str(out)])
    assert refused.value.code == 2 and "exists" in capsys.readouterr().err
