"""A campaign carried from one machine to the next in the checkout: `carry` packs a stopped campaign into
campaigns/<name>.tar, and `start` on a machine without it unpacks it (resnet_repro/campaign/carry.py)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from resnet_repro.campaign import Campaign, CampaignError, carry


def run_dir(folder: Path, state: str, step: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": state, "step": step}))
    (folder / "config.yaml").write_text("arch: resnet\n")
    (folder / "metrics.csv").write_text("step,split,error\n20,train,0.5\n")
    (folder / "data.json").write_text('{"fingerprint": "f"}')
    (folder / "last.ckpt").write_bytes(b"checkpoint at step %d" % step)
    (folder / "snapshots").mkdir()
    (folder / "snapshots" / "step-0.pt").write_bytes(b"weights at step 0")
    (folder / ".lock").write_text("")  # this machine's: not carried
    (folder / ".lock.json").write_text("{}")
    return folder


@pytest.fixture
def stopped(tmp_path) -> tuple[Campaign, Path]:
    """A stopped campaign on the 'old machine': one finished run, one stopped at step 40 of 100, one not started;
    its checkout at tmp/old/checkout, the data beside it in tmp/old/shared."""
    old = tmp_path / "old"
    campaign = Campaign("trial", old / "home")
    runs = [
        {"overrides": [f"seed={k}"], "experiment": "tenth", "run_id": f"resnet-20/seed{k}", "depth": 20, "steps": 100}
        for k in range(3)
    ]
    campaign.dir.mkdir(parents=True)
    definition = {
        "name": "trial",
        "runs": runs,
        "jobs": 1,
        "threads": 2,
        "commit": "0" * 40,
        "results_dir": str(old / "checkout" / "results"),
        "data_root": str(old / "shared" / "data" / "cifar10-jpeg.tar.xz"),
    }
    campaign.definition_file.write_text(json.dumps(definition))
    campaign.event("start", commit="0" * 40)
    run_dir(campaign.runs_dir / "tenth" / "resnet-20" / "seed0", "done", 100)
    run_dir(campaign.runs_dir / "tenth" / "resnet-20" / "seed1", "stopped", 40)
    (campaign.logs).mkdir()
    (campaign.logs / "supervisor.log").write_text("this machine's log\n")
    return campaign, old / "checkout" / "campaigns"


def test_a_carried_campaign_resumes_elsewhere_with_its_checkpoints_and_paths_moved(stopped, tmp_path, capsys):
    campaign, old_carried = stopped
    archive = carry.pack("trial", campaign.dir.parent, old_carried)
    assert archive == old_carried / "trial.tar" and "packed into" in capsys.readouterr().out

    names = set(tarfile.open(archive).getnames())
    finished, stopped_run = "runs/tenth/resnet-20/seed0", "runs/tenth/resnet-20/seed1"
    assert {f"{finished}/{name}" for name in ("status.json", "config.yaml", "metrics.csv")} <= names
    assert f"{finished}/last.ckpt" not in names and f"{finished}/snapshots/step-0.pt" not in names  # results/ has them
    assert {f"{stopped_run}/last.ckpt", f"{stopped_run}/snapshots/step-0.pt", f"{stopped_run}/data.json"} <= names
    assert not any(Path(n).name.startswith(".") or n.startswith("logs") for n in names)  # locks, logs stay behind

    # the new machine: an empty campaigns folder, the checkout somewhere else
    new_checkout = tmp_path / "new" / "repo"
    (new_checkout / "campaigns").mkdir(parents=True)
    (new_checkout / "campaigns" / "trial.tar").write_bytes(archive.read_bytes())
    here = Campaign("trial", tmp_path / "new" / "home")
    assert carry.unpack(here, new_checkout / "campaigns")
    assert [here.run_state(run) for run in here.runs()] == ["done", "stopped", "waiting"]
    assert (here.run_dir(here.runs()[1]) / "last.ckpt").read_bytes() == b"checkpoint at step 40"
    definition = here.definition()
    assert definition["results_dir"] == str(new_checkout / "results")
    assert definition["data_root"] == str(tmp_path / "new" / "shared" / "data" / "cifar10-jpeg.tar.xz")
    assert [e["event"] for e in here.events()] == ["start", "carried"]  # RUN.md keeps the old machine's stretches
    assert "unpacked from" in capsys.readouterr().out

    # never over a campaign this machine has: its own state is newer than any committed copy
    (here.run_dir(here.runs()[1]) / "last.ckpt").write_bytes(b"checkpoint at step 60")
    assert not carry.unpack(here, new_checkout / "campaigns")
    assert (here.run_dir(here.runs()[1]) / "last.ckpt").read_bytes() == b"checkpoint at step 60"


def test_carry_refuses_a_running_campaign_and_an_archive_that_escapes(stopped, tmp_path, monkeypatch):
    campaign, old_carried = stopped
    monkeypatch.setattr(Campaign, "supervisor_pid", lambda self: 4242)
    with pytest.raises(CampaignError, match="is running .* stop it first"):
        carry.pack("trial", campaign.dir.parent, old_carried)
    assert not (old_carried / "trial.tar").exists()

    evil = tmp_path / "evil" / "campaigns"
    evil.mkdir(parents=True)
    with tarfile.open(evil / "trial.tar", "w") as tar:
        tar.add(campaign.definition_file, "../outside.json")
    with pytest.raises(CampaignError, match="not a campaign's file; remove it"):
        carry.unpack(Campaign("trial", tmp_path / "elsewhere"), evil)
    assert not (tmp_path / "elsewhere" / "outside.json").exists()

    monkeypatch.undo()
    archive = carry.pack("trial", campaign.dir.parent, old_carried)
    cut = tmp_path / "cut" / "campaigns"
    cut.mkdir(parents=True)
    (cut / "trial.tar").write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # a copy cut short
    home = tmp_path / "cut-home"
    with pytest.raises(CampaignError, match="cannot unpack .*restore it from git"):
        carry.unpack(Campaign("trial", home), cut)
    assert not home.exists() or not any(home.iterdir()), "no half campaign left to resume from"


def test_status_of_a_campaign_carried_but_not_started_says_where_it_resumes_from(tmp_path, monkeypatch):
    monkeypatch.setattr(carry, "CARRIED", tmp_path / "campaigns")
    campaign = Campaign("trial", tmp_path / "home")
    with pytest.raises(CampaignError) as refused:
        campaign.definition()
    assert "has not been started on this machine" in str(refused.value) and "carried" not in str(refused.value)
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "trial.tar").write_bytes(b"")
    with pytest.raises(CampaignError, match="it resumes from .*trial.tar, carried here in the checkout"):
        campaign.definition()


def test_nothing_carried_nothing_unpacked(tmp_path):
    assert not carry.unpack(Campaign("trial", tmp_path / "home"), tmp_path / "campaigns")
    assert not (tmp_path / "home").exists()


def test_a_carried_campaign_runs_the_code_it_ran_where_the_checkout_has_it(tmp_path, capsys):
    from resnet_repro.campaign.launch import REPO, git, pin_code

    try:
        previous = git("rev-parse", "HEAD~1", cwd=REPO)
    except CampaignError:
        pytest.skip("a clone without history: no earlier commit to pin")
    campaign = Campaign("trial", tmp_path / "home")
    campaign.dir.mkdir(parents=True)
    assert pin_code(campaign, update=False, pinned=previous) == previous
    elsewhere = Campaign("other", tmp_path / "home")
    elsewhere.dir.mkdir(parents=True)
    assert pin_code(elsewhere, update=False, pinned="f" * 40) == git("rev-parse", "HEAD", cwd=REPO)
    assert "which this checkout lacks; it goes on with HEAD" in capsys.readouterr().out


def test_a_note_reaches_the_run_md_of_its_experiment_through_a_carry(stopped, tmp_path, capsys):
    from resnet_repro.campaign import collect
    from resnet_repro.campaign.cli import main

    campaign, _ = stopped
    home = ["--home", str(campaign.dir.parent)]
    text = "plain-56 at step 1,269 of 64,000 was lost with the machine; restarted from scratch"
    assert main(["note", "trial", "--text", text, "--experiment", "tenth", *home]) == 0
    assert main(["note", "trial", "--text", "for every experiment", *home]) == 0
    for bad in (["--text", " "], ["--text", "two\nlines"], ["--text", "x", "--experiment", "paper"]):
        assert main(["note", "trial", *bad, *home]) == 2
        assert capsys.readouterr().err.count("\n") == 1  # one line, naming the fix
    assert main(["note", "nothing", "--text", "x", *home]) == 2  # a campaign this machine does not have
    carry.pack("trial", campaign.dir.parent, tmp_path / "carried")  # the notes travel in events.jsonl
    moved = Campaign("trial", tmp_path / "new-home")
    assert carry.unpack(moved, tmp_path / "carried")
    written = collect.run_md(moved, moved.definition(), "tenth", moved.runs())
    assert f": {text}" in written and ": for every experiment" in written.split("### Notes")[1]
    assert text not in collect.run_md(moved, moved.definition(), "paper", moved.runs())


def test_collect_remakes_a_report_only_when_its_runs_changed(stopped, monkeypatch, capsys):
    """A collect at the end of a session with no run finished leaves the committed report as it was (remade, only
    its dates and footers would change); a run collected since, or --report-all, remakes it."""
    import resnet_repro.report as report
    from resnet_repro.campaign import collect

    campaign, _ = stopped
    made = []

    def fake_report(runs, out, command=None):  # the report of what is in runs/ now, as provenance.json records it
        records = [
            json.loads(p.read_text()) | {"run": p.parent.relative_to(runs).as_posix()}
            for p in runs.rglob("status.json")
        ]
        rows = [{"run": r["run"], "status": r["state"], "last_step": r["step"]} for r in records]
        (out / "provenance.json").write_text(json.dumps({"artifacts": {"curves": {"nets": [{"runs": rows}]}}}))
        made.append(sorted(r["run"] for r in rows))

    def finished(run_id):  # with a checkpoint collect can take the weights from
        import torch

        folder = campaign.runs_dir / "tenth" / run_id
        if not folder.is_dir():
            run_dir(folder, "done", 100)
        torch.save({"state_dict": {"model.w": torch.zeros(1)}}, folder / "last.ckpt")

    monkeypatch.setattr(report, "make_report", fake_report)
    results = Path(campaign.definition()["results_dir"]) / "tenth"
    finished("resnet-20/seed0")
    collect.collect("trial", campaign.dir.parent)
    assert made == [["resnet-20/seed0"]] and collect.report_is_current(results)
    collect.collect("trial", campaign.dir.parent)  # nothing new: kept
    assert len(made) == 1 and "kept as it was" in capsys.readouterr().out
    collect.collect("trial", campaign.dir.parent, report_all=True)
    assert len(made) == 2
    finished("resnet-20/seed2")  # since
    assert collect.report_is_current(results)  # of the runs in results/: seed2 is not there yet
    collect.collect("trial", campaign.dir.parent)
    assert made[-1] == ["resnet-20/seed0", "resnet-20/seed2"]
    (results / "runs" / "resnet-20" / "seed2" / "status.json").write_text("{cut")  # a damaged record: remade
    assert not collect.report_is_current(results)
    shutil.rmtree(results / "runs" / "resnet-20" / "seed2")  # a run removed since: remade too
    assert not collect.report_is_current(results)
