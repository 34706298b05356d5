"""The GPU check (resnet_repro/gpucheck.py) on the CPU: without CUDA it refuses in one line; simulated
(--device cpu --simulate) it runs its sweep, sync, TF32, timing, extrapolation and result-file code with
tiny sizes. What only a GPU can show (slots, sync errors, TF32 on cuDNN, speed) needs a GPU to run it."""

from __future__ import annotations

import json

from resnet_repro import gpucheck


def test_without_cuda_it_says_so_in_one_line_and_fails(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert gpucheck.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "finds no CUDA GPU" in err and "--simulate" in err
    assert gpucheck.main(["--device", "cpu"]) == 2, "a CPU run that is not marked simulated measures nothing"


def test_extrapolation_is_linear_in_depth_and_counts_the_evaluations():
    timing = [
        {
            "depth": d,
            "precision": "32-true",
            "compile": "false",
            "step_ms": ms,
            "eval_ms_per_1k_images": 0.0,
            "warmup_s": 1,
        }
        for d, ms in ((20, 10.0), (56, 28.0))
    ]
    (row,) = gpucheck.extrapolate(timing)
    assert row["resnet56_64k_min"] == round(28.0 * 64000 / 1000 / 60, 2)
    per_depth_ms = {d: 10.0 + 18.0 * (d - 20) / 36 for _, d in gpucheck.FIGURE6}  # 110 lies beyond 56: extended
    assert row["figure6_sequential_min"] == round(sum(per_depth_ms[d] for _, d in gpucheck.FIGURE6) * 64 / 60, 1)
    for row in timing:  # 1 s per 1k images; 64 evaluations of 15k images
        row["eval_ms_per_1k_images"] = 1000.0
    assert gpucheck.extrapolate(timing)[0]["resnet20_64k_min"] == round((10.0 * 64 + 64 * 15) / 60, 2)


def test_simulated_check_runs_every_part_and_writes_a_result_that_says_simulated(tmp_path, capsys):
    out = tmp_path / "results"
    args = ["--device", "cpu", "--simulate", "--compile", "false", "--timed-steps", "1", "--out", str(out)]
    assert gpucheck.main(args) == 0
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 2 and files[0].startswith("simulated-cpu-") and files[0].endswith(".json")
    result = json.loads((out / files[0]).read_text())
    assert result["simulated"] and result["ok"]
    assert {"torch", "commit", "driver", "device_name"} <= set(result["machine"])
    sweep = result["sweep"]
    assert sweep["exit"] == 0 and len(sweep["starts"]) == 2 and all(j["state"] == "done" for j in sweep["jobs"])
    assert [(r["precision"], r["compile"], r["steps"]) for r in result["sync"]] == [
        ("bf16-mixed", "false", 4),
        ("32-true", "false", 4),
    ]
    assert result["tf32"]["switches_off"] and result["tf32"]["relative_error"]["conv"] < 1e-4
    assert {(r["depth"], r["precision"]) for r in result["timing"]} == {(8, "bf16-mixed"), (8, "32-true")}
    assert all(r["step_ms"] > 0 for r in result["timing"]) and len(result["extrapolated"]) == 2
    md = (out / files[1]).read_text()
    assert "SIMULATED on the CPU" in md and result["machine"]["commit"] in md
    # A second result in the same second never overwrites the first.
    first = (out / files[0]).read_text()
    gpucheck.write_result(result, out)
    gpucheck.write_result(result, out)
    assert len(list(out.iterdir())) >= 4 and (out / files[0]).read_text() == first
