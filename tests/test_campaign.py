"""Campaigns as a user runs them: start in the background, stop mid-run, start again, status, collect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_into_closed_pipe

from resnet_repro.campaign import Campaign, main
from resnet_repro.campaign.progress import rates_to_predict

REPO = Path(__file__).resolve().parents[1]


def campaign_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resnet_repro.campaign", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def write_campaign(folder: Path, runs: list[str], jobs: int = 2) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(json.dumps({"jobs": jobs, "threads": 1, "runs": runs}))  # JSON is YAML
    return path


TINY = (
    "data.cache_dir=null data.subset=tiny data.val_size=20 batch_size=16 eval_every=1000 log_every=100 "
    "trainer.checkpoint_every=100 trainer.eval_batch_size=64 name=tiny"
)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def ended():
    """Campaigns a test starts: whatever happens in the test, their supervisor and runs (one process group) end."""
    started: list[Campaign] = []
    yield started
    for campaign in started:
        pid = campaign.supervisor_pid()
        if pid is None:
            continue
        try:
            os.killpg(os.getpgid(pid), signal.SIGCONT)
            os.killpg(os.getpgid(pid), signal.SIGTERM)
            group = os.getpgid(pid)
            deadline = time.monotonic() + 120  # they checkpoint and exit; a loaded machine is given time
            # the process itself, not its pid file (which the supervisor removes as it begins to stop)
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            os.killpg(group, signal.SIGKILL)  # whatever of the group is left
        except ProcessLookupError:
            pass


def test_bad_campaigns_are_refused_in_one_line_before_any_work(tmp_path, tiny_batches, capsys):
    home = tmp_path / "home"
    assert main(["start", "no-such-campaign", "--home", str(home)]) == 2
    assert "known campaigns: evidence" in capsys.readouterr().err
    bad = write_campaign(tmp_path, [f"arch=resnet depth=21 steps=10 {TINY}"])
    assert main(["start", str(bad), "--home", str(home), "--data-root", str(tiny_batches)]) == 2
    err = capsys.readouterr().err.strip()
    assert "depth=21" in err and "6n+2" in err and len(err.splitlines()) == 1
    assert main(["start", str(bad), "--home", str(home), "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "--data-root" in capsys.readouterr().err
    assert not home.exists(), "a refused campaign leaves nothing behind"
    assert main(["status", "tiny", "--home", str(home)]) == 2


def test_start_stop_resume_status_collect(tmp_path, tiny_batches, ended):
    home, results = tmp_path / "home", tmp_path / "results"
    runs = [f"arch=resnet depth=8 steps=3000 {TINY}", f"arch=plain depth=8 steps=3000 {TINY}"]
    definition = write_campaign(tmp_path, runs)
    common = ["--home", str(home)]
    campaign = Campaign("tiny", home)
    ended.append(campaign)
    started = campaign_cli(
        "start", str(definition), *common, "--data-root", str(tiny_batches), "--results", str(results)
    )
    assert started.returncode == 0, started.stderr
    # the hints printed keep --home: typed as shown, they act on this campaign
    assert f"status tiny --home {home}" in started.stdout and f"stop tiny --home {home}" in started.stdout
    # at nice 19 on a loaded machine the supervisor may take minutes to claim its pid file: wait for that event
    wait_for(lambda: campaign.supervisor_pid() is not None, 900, "the supervisor's pid file")
    pid = campaign.supervisor_pid()
    # the runs are niced and run the pinned clone, not this checkout
    assert (campaign.code / ".git").exists()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert json.loads(campaign.definition_file.read_text())["commit"] == commit
    assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16]) == 19  # nice value
    autogroup = Path(f"/proc/{pid}/autogroup")  # Linux with autogroup: the session's group is niced too
    assert not autogroup.exists() or autogroup.read_text().split()[-1] == "19"

    run_dirs = [campaign.runs_dir / "tiny" / name / "seed0" for name in ("resnet-8", "plain-8")]
    wait_for(lambda: all((d / "last.ckpt").is_file() for d in run_dirs), 900, "a checkpoint of each run")
    stopped = campaign_cli("stop", "tiny", *common)
    assert stopped.returncode == 0, stopped.stderr
    assert campaign.supervisor_pid() is None
    steps = {d: json.loads((d / "status.json").read_text()) for d in run_dirs}
    assert all(s["state"] == "stopped" and 0 < s["step"] < 3000 for s in steps.values()), steps
    shown = campaign_cli("status", "tiny", *common).stdout
    assert "stopped" in shown
    for s in steps.values():  # the step each run checkpointed, not its last metrics row's
        assert f"step {s['step']:>6,}/" in shown, (s, shown)

    again = campaign_cli("start", "tiny", *common)  # by name now: campaign.json remembers the definition
    assert again.returncode == 0, again.stderr
    wait_for(lambda: campaign.supervisor_pid() is None, 1800, "the campaign to finish")
    assert [campaign.run_state(run) for run in campaign.runs()] == ["done", "done"]
    events = [e["event"] for e in campaign.events()]
    assert events.count("start") == 2 and events.count("stop") == 2
    resumed = [e for e in campaign.events() if e["event"] == "run start"][2:]
    assert all(e["step"] > 0 for e in resumed), "the second start resumes from the checkpoints"
    status = campaign_cli("status", "tiny", *common).stdout
    assert "2 runs: 2 finished" in status and "100%" in status
    finished = campaign_cli("start", "tiny", *common)  # a finished campaign: said so, nothing started
    assert finished.returncode == 0 and "all 2 runs have finished; nothing to start" in finished.stdout
    assert campaign.supervisor_pid() is None and [e["event"] for e in campaign.events()].count("start") == 2

    # each finished run was copied into results/ as it finished: the record and the weights, no checkpoint
    for name in ("resnet-8", "plain-8"):
        record = results / "tiny" / "runs" / name / "seed0"
        assert {"config.yaml", "status.json", "metrics.csv", "weights.pt"} <= {p.name for p in record.iterdir()}
        assert not list(record.glob("*.ckpt"))
    collected = campaign_cli("collect", "tiny", *common, "--no-report")
    assert collected.returncode == 0, collected.stderr
    run_md = (results / "tiny" / "RUN.md").read_text()
    assert "resnet-8/seed0" in run_md and "start on" in run_md and commit[:10] in run_md


def test_status_of_a_campaign_not_started_here_is_one_line(tmp_path, capsys):
    assert main(["status", "evidence", "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "campaign evidence has not been started on this machine" in err
    assert f"start evidence --home {tmp_path}" in err


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_status_read_by_a_reader_that_stops_early_ends_without_a_traceback(tmp_path, unbuffered):
    """`campaign status evidence2 | head -2`: head closes the pipe; the listing stops there, in silence."""
    record = {"jobs": 1, "threads": 2, "commit": "0" * 40, "data_root": "data", "results_dir": "results"}
    record["runs"] = [{"overrides": [], "experiment": "tenth", "run_id": "plain-20/seed0", "depth": 20, "steps": 6400}]
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "campaign.json").write_text(json.dumps(record))
    shown = run_into_closed_pipe(
        ["-m", "resnet_repro.campaign", "status", "tiny", "--home", str(tmp_path)], PYTHONUNBUFFERED=unbuffered
    )
    assert shown.returncode == 1 and shown.stderr == ""


@pytest.mark.parametrize("command", ["stop", "pause", "continue", "collect"])
def test_commands_on_an_unknown_campaign_name_the_fix(tmp_path, command, capsys):
    assert main([command, "nothing", "--home", str(tmp_path)]) == 2
    assert "python -m resnet_repro.campaign start nothing" in capsys.readouterr().err


def test_runs_not_running_are_predicted_at_the_rate_of_the_one_running_now():
    # plain-20 was measured at 0.42 s/it beside other work; ResNet-20 runs now at 0.15 on the quiet machine
    runs = [(20, 0.78, "done"), (20, 0.15, "running"), (20, 0.42, "stopped"), (56, None, "waiting")]
    assert rates_to_predict(runs)[1:] == [0.15, 0.15, pytest.approx(0.15 * 54 / 18)]
    # With nothing running, a run's own rate, else the nearest measured depth's, scaled by layers
    assert rates_to_predict([(20, 0.42, "stopped"), (56, None, "waiting")]) == [0.42, pytest.approx(0.42 * 3)]
    assert rates_to_predict([(56, None, "waiting")]) == [None]
