"""Resume validates what it loads: every damaged file (metrics, checkpoint, status, config) and every pair that
disagrees is refused in one line naming the file and the fix, nothing deleted or overwritten; the list of
cases, each through the command line, is tests/test_bad_inputs.py (DAMAGED_RUN). Here: the intact run resumes."""

from __future__ import annotations

from test_resilience import interrupted_run

from resnet_repro.train import train


def test_an_intact_interrupted_run_still_resumes(tiny_batches, tmp_path, monkeypatch):
    spec, run = interrupted_run(tiny_batches, tmp_path, monkeypatch)
    assert run.check_resume(spec.steps, spec.log_every) == 4  # the checks pass, and say where it resumes
    assert train(spec) == "done"
