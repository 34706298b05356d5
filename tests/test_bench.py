"""The benchmark runs end to end (on generated images, tiny timings) and never overwrites a result.

Speed itself is measured by `python -m resnet_repro.bench`, never asserted here.
"""

import csv
from pathlib import Path

import pytest

from resnet_repro.bench.cli import main
from resnet_repro.bench.paths import BARE_LOOP, PROJECT, reference_path, variant_path
from resnet_repro.bench.render import Row, render

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "bench"

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


def test_each_timed_path_is_named_as_the_committed_results_name_it():
    names = {
        PROJECT: ("(a) project, Lightning", "a"),
        BARE_LOOP: ("(b) bare loop", "b"),
        reference_path(2, "default"): ("(c) reference, 2 workers", "c2"),
        reference_path(4, "project"): ("(c) reference, 4 workers, project's OpenMP env", "c4p"),
        variant_path("trainer.precision=32-true"): (
            "(a) with trainer.precision=32-true",
            "a trainer.precision=32-true",
        ),
        variant_path("trainer.compile=true,trainer.threads=1"): (
            "(a) with trainer.compile=true,trainer.threads=1",
            "a trainer.compile=true,trainer.threads=1",
        ),
    }
    assert {path: (path.label, path.code) for path in names} == names
    assert [p.is_variant for p in names] == [False, False, False, False, True, True]
    assert variant_path("trainer.precision=32-true") == variant_path("trainer.precision=32-true")  # a table key
    committed = (COMMITTED / "amd-epyc-2c-20261122-191429.md").read_text()
    for path in (PROJECT, BARE_LOOP, reference_path(2, "default"), variant_path("trainer.precision=32-true")):
        assert f"| {path.label} |" in committed and f"{path.code} " in committed


def test_the_table_divides_a_by_the_fastest_reference_of_each_thread_environment():
    values = {
        PROJECT: [300, 330],
        BARE_LOOP: [150, 165],
        reference_path(2, "default"): [100, 110],
        reference_path(4, "default"): [150, 110],
        reference_path(2, "project"): [200, 220],
        variant_path("trainer.threads=1"): [150, 165],
    }
    rows = [Row(20, path, r, v, "0.00 0.00 0.00") for path, vs in values.items() for r, v in enumerate(vs)]
    table = render(rows, {"cpu": "test"}, {"command": "none"}, ["0.00 0.00 0.00"] * 2)
    header = next(line for line in table.splitlines() if line.startswith("| net |"))
    assert header.endswith("| a/c | a/c, same OpenMP env | a/b |")
    # medians: a 315, b 157.5, c2 105, c4 130, c2p 210; a/c = 315/130, same env 315/210, a/b 2
    assert "| ResNet-20 | 315 | 158 | 105 | 130 | 210 | 158 | 2.42 | 1.50 | 2.00 |" in table
    assert "- ResNet-20: (a) with trainer.threads=1: 0.50" in table
    assert "- ResNet-20: a/c per repeat 2.00, 3.00 (median 2.50); a/b per repeat 2.00, 2.00 (median 2.00)" in table
    assert "c2p 200, 220; a trainer.threads=1 150, 165" in table

    # Without a reference run in the project's environment, its column is not there.
    table = render([r for r in rows if r.path != reference_path(2, "project")], {}, {}, [])
    assert next(line for line in table.splitlines() if line.startswith("| net |")).endswith("| a/c | a/b |")
