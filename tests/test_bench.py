"""The benchmark runs end to end (on generated images, tiny timings) and never overwrites a result;
it counts the nets' FLOPs, states the machine's ceilings and says where a step's time goes.

Speed itself is measured by `python -m benchmarks.throughput`, never asserted here.
"""

import csv
from pathlib import Path

import pytest

from benchmarks.throughput import cli
from benchmarks.throughput.ceiling import Ceiling
from benchmarks.throughput.cli import main
from benchmarks.throughput.flops import NetFlops, count_flops
from benchmarks.throughput.harness import run_spec
from benchmarks.throughput.paths import BARE_LOOP, PROJECT, reference_path, variant_path
from benchmarks.throughput.profile import ELSE, STEP, StepProfile, part_of
from benchmarks.throughput.render import Row, Work, default_out, render
from resnet_repro.machine import Cpu, Peak

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "bench"

TINY = ["--depths", "8", "--steps", "2", "--warmup", "1", "--repeats", "1", "--ref-workers", "0"]


def cells_of(table: str, start: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_bench_prints_and_writes_the_table_of_all_three_paths(tmp_path, capsys):
    out = tmp_path / "bench.md"
    table = main([*TINY, "--profile", "2", "--out", str(out)])
    assert out.read_text() == table and table in capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("| net |"))
    assert "(a) project, Lightning" in header and "(b) bare loop" in header and "(c) reference, 0 workers" in header
    row = next(line for line in table.splitlines() if line.startswith("| ResNet-8 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert all(float(c) > 0 for c in cells[1:])  # images/s of a, b, c, then a/c and a/b
    for key in ("- cpu:", "- cpu SIMD flags:", "- cores:", "- gpu:", "- torch:", "- data: generated images"):
        assert key in table
    assert "- FLOPs per image: ResNet-8: 24.5 MFLOP forward, 73 MFLOP per training image" in table
    assert "- nominal peak, fp32: " in table and "- measured ceiling, fp32: " in table  # the reference's arithmetic

    # Achieved GFLOP/s of each path, and its fractions of the ceilings.
    for label in ("(a) project, Lightning", "(b) bare loop", "(c) reference, 0 workers"):
        net, path, arithmetic, gflops, of_peak, of_measured = cells_of(table, f"| ResNet-8 | {label} |")
        assert arithmetic in ("fp32", "bf16") and float(gflops) > 0 and float(of_measured.rstrip("%")) > 0
        assert of_peak == "n/a" or float(of_peak.rstrip("%")) > 0
    assert cells_of(table, "| ResNet-8 | (c) reference")[2] == "fp32"

    # Where the time goes: every part, summing to the profiled step (self times: nothing counted twice).
    for part in ("data", "conv forward", "conv backward", "loss", "optimizer", ELSE):
        assert float(cells_of(table, f"| {part} |")[1].split()[0]) >= 0
    assert float(cells_of(table, "| conv backward |")[1].split()[0]) > 0
    assert abs(float(cells_of(table, "| parts sum / profiled step |")[1].rstrip("%")) - 100) < 5
    assert "| Lightning per step, (a) - (b) medians |" in table

    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["path"] for r in rows) == ["(a) project, Lightning", "(b) bare loop", "(c) reference, 0 workers"]
    assert all(float(r["gflop_per_s"]) > 0 and float(r["of_measured"]) > 0 for r in rows)

    # An existing result is refused before any work starts.
    with pytest.raises(SystemExit) as refused:
        main([*TINY, "--out", str(out)])
    assert refused.value.code == 2 and "exists" in capsys.readouterr().err


def test_a_variant_that_changes_a_process_wide_setting_is_timed_in_a_process_of_its_own(tmp_path, monkeypatch):
    flipped = f"trainer.keep_freed_memory={str(not run_spec([]).trainer.keep_freed_memory).lower()}"
    started = []
    start = cli.project_process
    monkeypatch.setattr(
        cli, "project_process", lambda overrides, *args: started.append(overrides) or start(overrides, *args)
    )
    also = ["--also", flipped, "--also", "trainer.channels_last=false"]
    table = main([*TINY, "--profile", "0", *also, "--out", str(tmp_path / "bench.md")])
    assert started == [["depth=8", "arch=resnet", flipped]]  # the other variant shares the benchmark's process
    for label in (f"(a) with {flipped}", "(a) with trainer.channels_last=false"):
        assert float(cells_of(table, f"| ResNet-8 | {label} |")[3]) > 0  # its GFLOP/s: it was timed


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


def test_the_flops_counted_are_the_known_multiply_adds_of_the_nets():
    # ~41 M multiply-adds for ResNet-20's forward pass, ~126 M for ResNet-56's; a FLOP is half a multiply-add.
    for depth, low, high in ((20, 40e6, 42e6), (56, 124e6, 127e6)):
        flops = count_flops(depth)
        assert low <= flops.forward / 2 <= high
        assert 2.9 < flops.training / flops.forward < 3.0  # backward ~2x forward, less the first conv's input grad
    assert count_flops(20, arch="plain") == count_flops(20)  # the shortcut adds no product


def test_each_op_of_a_profile_belongs_to_one_part():
    step = [STEP]
    conv = ["aten::conv2d", "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution"]
    compiled = ["Torch-Compiled Region: 0/0", "CompiledFunction", "## Call CompiledFxGraph f3k2 ##"]
    parts = {
        "data": step + ["bench::data", "aten::constant_pad_nd", "aten::fill_"],  # a region takes what it runs
        "conv forward": step + conv + ["aten::empty"],  # the nearest named op takes an unnamed one
        "conv backward": step + ["autograd::engine::evaluate_function: ConvolutionBackward0", "aten::zeros"],
        "batch norm": step + ["aten::batch_norm", "aten::_batch_norm_impl_index", "aten::native_batch_norm"],
        "other pointwise": step + ["aten::relu", "aten::clamp_min"],
        "compiled kernels": step + compiled,  # the compiled graph's own time: its fused kernels
        "loss": step
        + ["autograd::engine::evaluate_function: NllLossBackward0", "aten::nll_loss_backward", "aten::fill_"],
        "optimizer": step + ["Optimizer.step#SGD.step", "aten::_foreach_add_"],
        ELSE: step + ["aten::addmm"],  # the linear layer: named by no part
    }
    assert {part: part_of(chain) for part, chain in parts.items()} == {part: part for part in parts}
    assert part_of(step + compiled + ["mkldnn::_convolution_pointwise"]) == "conv forward"  # called by the graph
    assert part_of(step + compiled + ["aten::convolution_backward"]) == "conv backward"
    assert part_of(step) == ELSE  # the step's own time: its Python between ops


def test_the_gflops_table_divides_by_the_ceiling_of_each_paths_arithmetic_and_the_profile_sums_up():
    values = {PROJECT: [300, 330], BARE_LOOP: [150, 165], reference_path(2, "default"): [100, 110]}
    rows = [Row(20, path, r, v, "0.00 0.00 0.00") for path, vs in values.items() for r, v in enumerate(vs)]
    ceilings = {
        "bf16": Ceiling("bf16", Peak(630.0, "bf16 peak"), 300.0, 250.0, 2),  # the faster of matmul and conv
        "fp32": Ceiling("fp32", Peak(None, "clock unknown"), 60.0, 100.0, 2),
    }
    work = Work({20: NetFlops(20, 80e6, 240e6)}, {PROJECT: "bf16", BARE_LOOP: "bf16"}, ceilings)
    parts = dict.fromkeys(("data", "conv forward", "conv backward", "batch norm", "other pointwise"), 40.0)
    parts |= dict.fromkeys(("compiled kernels", "loss", "optimizer", ELSE), 10.0)
    profiles = {20: StepProfile(10, 128, 250.0, parts)}
    table = render(rows, {}, {}, [], work, profiles)
    # medians: a 315 img/s x 240 MFLOP = 75.6 GFLOP/s = 12.0% of 630, 25.2% of 300; c 105 x 240 M = 25.2 of fp32's
    assert "| ResNet-20 | (a) project, Lightning | bf16 | 75.6 | 12.0% | 25.2% |" in table
    assert "| ResNet-20 | (b) bare loop | bf16 | 37.8 | 6.0% | 12.6% |" in table
    assert "| ResNet-20 | (c) reference, 2 workers | fp32 | 25.2 | n/a | 25.2% |" in table
    assert "| conv backward | 40.0 (16.0%) |" in table and "| optimizer | 10.0 (4.0%) |" in table
    assert "| parts sum / profiled step | 96.0% |" in table
    # (a) 128 / 315 s = 406.3 ms per step, (b) 128 / 157.5 s = 812.7 ms
    assert (
        "| (b) unprofiled, median | 812.7 |" in table and "| Lightning per step, (a) - (b) medians | -406.3 |" in table
    )


def test_a_result_file_is_named_by_the_cpu_kind_and_never_overwrites_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    zen5 = Cpu("AMD EPYC", "26", "2", ("avx512f",), "AuthenticAMD", 2696.0)
    assert default_out(zen5, 2, None) == Path("results/bench/amd-epyc-f26m2-2c.md")
    assert default_out(zen5, 8, "NVIDIA A100-SXM4-40GB") == Path(
        "results/bench/amd-epyc-f26m2-8c-nvidia-a100-sxm4-40gb.md"
    )
    Path("results/bench").mkdir(parents=True)
    Path("results/bench/amd-epyc-f26m2-2c.csv").write_text("taken")
    dated = default_out(zen5, 2, None)
    assert dated.name.startswith("amd-epyc-f26m2-2c-20") and not dated.exists()


def test_the_sweep_measurement_runs_both_ways_and_writes_its_result(tiny_batches, tmp_path):
    from conftest import tiny_overrides

    from benchmarks.throughput import sweeps

    out = tmp_path / "sweeps.md"
    tiny = [o for o in tiny_overrides(tiny_batches, tmp_path) if not o.startswith(("data.root=", "out_dir="))]
    sweeps.main(
        ["--data-root", str(tiny_batches), "--nets", "arch=plain,resnet depth=8", "--out", str(out)]
        + [f"--set={o}" for o in [*tiny, "log_every=4"]]
    )
    text = out.read_text()
    assert "| one at a time, all threads | - |" in text
    assert "| side by side, " in text and "trainer.threads=1" in text
    assert "x the runs per hour" in text
    assert sweeps.count_runs(["arch=plain,resnet", "depth=20,56", "seed=0,1,2"]) == 12
    assert sweeps.merged(["steps=400", "depth=8", "steps=8"]) == ["steps=8", "depth=8"]
    with pytest.raises(SystemExit):  # never overwrites a result
        sweeps.main(["--data-root", str(tiny_batches), "--out", str(out)])


@pytest.mark.parametrize("script", sorted(p.name for p in (COMMITTED.parents[1] / "benchmarks").glob("[!_]*.py")))
def test_every_benchmark_script_starts_as_its_docs_run_it(script):
    """`python benchmarks/<script>.py` puts benchmarks/ first on sys.path: a file there named like a module a library
    imports replaces it (bottleneck.py did, for pandas' optional `bottleneck`, and figure7_outliers.py failed)."""
    import subprocess
    import sys

    repo = COMMITTED.parents[1]
    done = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / script), "--help"], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-1000:]  # (table1_conventions.py takes no options: it just runs)
