"""Start a campaign (check every run, pin the code, spawn the supervisor), the supervisor itself, stop, pause."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import CONF_DIR, ConfigError, compose, resolve
from ..runs import atomic_write
from . import carry
from .collect import copy_record
from .store import Campaign, CampaignError, Run, cpu, positive_whole, read_definition_file

REPO = Path(__file__).resolve().parents[2]  # a checkout: campaigns clone it, so they need one
CAMPAIGN_CONFIGS = CONF_DIR / "campaign"


def definition_path(name: str) -> Path:
    """conf/campaign/<name>.yaml, or a campaign file given by its path (its name is the file's stem)."""
    return Path(name) if name.endswith((".yaml", ".yml")) else CAMPAIGN_CONFIGS / f"{name}.yaml"


def load_definition(name: str) -> dict:
    path = definition_path(name)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CAMPAIGN_CONFIGS.glob("*.yaml"))) or "none"
        raise CampaignError(f"no campaign definition {path}; known campaigns: {known}")
    spec = read_definition_file(path)  # a mapping, or CampaignError in one line
    for key in ("jobs", "threads"):
        value = spec.get(key)
        if not positive_whole(value):
            raise CampaignError(f"{path}: {key}={value} must be a positive whole number")
    if not spec.get("runs"):
        raise CampaignError(f"{path}: no runs listed under runs:")
    return spec


def plan_runs(run_lines: list[str], runs_dir: Path, data_root: Path) -> list[dict]:
    """Resolve every run's config as run.py will (so a bad one is refused now, in one line) and name its directory."""
    planned = []
    for line in run_lines:
        try:
            cfg = compose([*line.split(), f"out_dir={runs_dir}", f"data.root={data_root}"])
            spec = resolve(cfg)
        except ConfigError as e:
            raise CampaignError(f"run '{line}': {e}") from None
        planned.append(
            {
                "overrides": line.split(),
                "experiment": str(cfg.name),
                "run_id": spec.run_id,
                "depth": spec.net.depth,
                "steps": spec.steps,
            }
        )
    labels = [f"{r['experiment']}/{r['run_id']}" for r in planned]
    if len(set(labels)) != len(labels):
        raise CampaignError(f"two runs of the campaign share a directory: {labels}; make each run distinct")
    return planned


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise CampaignError(
            f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()[-300:]}; campaigns run from a git checkout"
        )
    return done.stdout.strip()


def pin_code(campaign: Campaign, update: bool, pinned: str | None = None) -> str:
    """A clone of this repository at its HEAD commit (made once; moved only by --update-code), or at `pinned`,
    the commit a campaign carried from another machine ran (carry.py), where this checkout has it."""
    head = git("rev-parse", "HEAD", cwd=REPO)
    if git("status", "--porcelain", "--untracked-files=no", "--", "resnet_repro", "run.py", cwd=REPO):
        print("note: the checkout has uncommitted changes; the campaign runs the committed HEAD without them")
    if not (campaign.code / ".git").exists():
        if pinned and not update:
            known = subprocess.run(["git", "cat-file", "-e", f"{pinned}^{{commit}}"], cwd=REPO, capture_output=True)
            if known.returncode:
                print(f"note: the campaign ran code {pinned[:10]}, which this checkout lacks; it goes on with HEAD")
            else:
                head = pinned
        git("clone", "--quiet", "--no-checkout", str(REPO), str(campaign.code), cwd=REPO)
        git("checkout", "--quiet", "--detach", head, cwd=campaign.code)
    elif update:
        git("fetch", "--quiet", str(REPO), head, cwd=campaign.code)
        git("checkout", "--quiet", "--detach", head, cwd=campaign.code)
    return git("rev-parse", "HEAD", cwd=campaign.code)


def default_data_root() -> Path:
    env = os.environ.get("CIFAR10_ROOT")
    return Path(env) if env else REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"


def start(name: str, data_root: str | None, results: str | None, update_code: bool, root: Path | None = None) -> int:
    campaign = Campaign(definition_path(name).stem, root)
    carry.unpack(campaign)  # a campaign carried here from another machine in the checkout, if this one has none
    previous = campaign.recorded()
    # A campaign started from a file elsewhere resumes by its name alone: campaign.json keeps its runs.
    spec = previous["spec"] if "spec" in previous and not definition_path(name).is_file() else load_definition(name)
    name = campaign.name
    if pid := campaign.supervisor_pid():
        print(f"campaign {name} is already running (supervisor pid {pid}); status: {campaign.command('status')}")
        return 0
    data = Path(data_root or previous.get("data_root") or default_data_root()).expanduser().resolve()
    if not data.exists():
        raise CampaignError(f"no CIFAR-10 at {data}; pass --data-root <folder or .tar.xz> (README, Data)")
    results_dir = Path(results or previous.get("results_dir") or REPO / "results").expanduser().resolve()
    runs = plan_runs(spec["runs"], campaign.runs_dir, data)
    if all(campaign.finished(Run.of(run)) for run in runs):
        print(
            f"campaign {name}: all {len(runs)} runs have finished; nothing to start. "
            f"Their results: {campaign.command('collect')}"
        )
        return 0
    campaign.dir.mkdir(parents=True, exist_ok=True)
    commit = pin_code(campaign, update_code, previous.get("commit"))
    definition = {
        "name": name,
        "runs": runs,
        "jobs": spec["jobs"],
        "threads": spec["threads"],
        "data_root": str(data),
        "results_dir": str(results_dir),
        "commit": commit,
        "spec": spec,
    }
    atomic_write(campaign.definition_file, json.dumps(definition, indent=1) + "\n")  # never a cut campaign.json
    campaign.logs.mkdir(exist_ok=True)
    log = open(campaign.logs / "supervisor.log", "a")
    # The supervisor and its runs: a session of their own (a closed shell does not end them), nice 19
    # (tests and editing keep the CPU when they need it), the pinned code first on sys.path.
    process = subprocess.Popen(
        [sys.executable, "-m", "resnet_repro.campaign", "_supervise", name, "--home", str(campaign.dir.parent)],
        cwd=campaign.code,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lowest_priority,
    )
    # Wait for it to claim the pid file, so that `status` right after is true. It starts at nice 19: on a
    # loaded machine its imports alone may take a minute, so the wait is for the event, with a generous limit.
    deadline = time.monotonic() + START_WAIT_S
    while campaign.supervisor_pid() != process.pid and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.poll() is not None:
        raise CampaignError(
            f"the supervisor exited at once (code {process.returncode}); see {campaign.logs / 'supervisor.log'}"
        )
    if campaign.supervisor_pid() != process.pid:  # alive, but slow to start at nice 19 on a busy machine
        print(f"campaign {name}: the supervisor (pid {process.pid}) is still starting; status says when it runs")
    print(
        f"campaign {name}: started (pid {process.pid}, nice 19, code {commit[:10]}), "
        f"{len(runs)} runs, {spec['jobs']} at a time, {spec['threads']} thread(s) each\n"
        f"  status: {campaign.command('status')}\n"
        f"  stop:   {campaign.command('stop')}"
    )
    return 0


START_WAIT_S = 300  # at most, for the supervisor to claim its pid file


def lowest_priority() -> None:
    """In the supervisor's new session, before it runs: nice 19 for it and its runs, and the same for the
    session's scheduling group. Linux with autogroup (/proc/sys/kernel/sched_autogroup_enabled) shares the
    CPU equally between sessions, whatever the nice values inside them: measured here, a nice-19 campaign
    in a session of its own took about half of the 2 cores from a notebook beside it until its group
    was set to nice 19 too. Where there is no autogroup, the file is missing: nice alone does the job."""
    os.nice(19)
    try:
        Path("/proc/self/autogroup").write_text("19")
    except OSError:
        pass


def supervise(name: str, root: Path) -> int:
    """The background process: keeps `jobs` runs going until all are finished or it is told to stop."""
    campaign = Campaign(name, root)
    definition = campaign.definition()
    campaign.pid_file.write_text(str(os.getpid()))
    campaign.event(  # jobs and threads too: RUN.md lists what each stretch ran with (the definition can change)
        "start", commit=definition["commit"], cpu=cpu(), pid=os.getpid(), jobs=definition["jobs"],
        threads=definition["threads"],
    )  # fmt: skip
    stopping = False
    children: dict[Run, subprocess.Popen] = {}

    def on_term(signum, _frame):
        nonlocal stopping
        stopping = True
        for child in children.values():  # each run checkpoints the step it is on, then exits 143
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": "1"}  # compile in the run's process, no worker pool
    pending = [run for run in campaign.runs() if not campaign.finished(run)]
    failed_here: list[str] = []
    while (pending and not stopping) or children:
        while pending and not stopping and len(children) < definition["jobs"]:
            run = pending.pop(0)
            command = [
                sys.executable,
                "run.py",
                *run.overrides,
                f"out_dir={campaign.runs_dir}",
                f"data.root={definition['data_root']}",
                f"trainer.threads={definition['threads']}",
                "trainer.progress_bar=false",
                "report=false",
            ]
            log = open(campaign.logs / f"{run.label.replace('/', '_')}.log", "a")
            children[run] = subprocess.Popen(
                command, cwd=campaign.code, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
            campaign.event(
                "run start", run=run.label, pid=children[run].pid, step=campaign.run_status(run).get("step", 0)
            )
        time.sleep(2)
        for run, child in list(children.items()):
            if child.poll() is None:
                continue
            del children[run]
            state = campaign.run_state(run)
            campaign.event(
                "run exit",
                run=run.label,
                code=child.returncode,
                state=state,
                step=campaign.run_status(run).get("step", 0),
            )
            if campaign.finished(run):
                try:
                    copy_record(campaign, run, Path(definition["results_dir"]))
                except Exception as e:  # collect can redo it; the campaign goes on
                    print(f"[campaign] could not copy {run.label} into results: {e}", flush=True)
            elif not stopping:  # refused or crashed: not retried in this session (no loop); `start` retries
                failed_here.append(run.label)
                print(f"[campaign] {run.label} exited with code {child.returncode}; see its log", flush=True)
    campaign.event("stop", reason="told to stop" if stopping else "all runs finished or failed", failed=failed_here)
    campaign.pid_file.unlink(missing_ok=True)
    return 0


def signal_group(campaign: Campaign, sig: int) -> int | None:
    """Signal the supervisor and every run it started (one process group); the supervisor's pid, or None."""
    pid = campaign.supervisor_pid()
    if pid is not None:
        os.killpg(os.getpgid(pid), sig)
    return pid


def stop(name: str, root: Path | None = None, wait_s: float = 600) -> bool:
    """SIGTERM to every process of the campaign, then wait for the runs' checkpoints. False if it is still running."""
    campaign = Campaign(name, root)
    campaign.definition()
    pid = campaign.supervisor_pid()
    if pid is None:
        print(f"campaign {name} is not running")
        return True
    if campaign.paused(pid):
        signal_group(campaign, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    signal_group(campaign, signal.SIGTERM)
    print(f"campaign {name}: stopping (each run checkpoints the step it is on) ...", flush=True)
    deadline = time.monotonic() + wait_s
    while campaign.supervisor_pid() is not None and time.monotonic() < deadline:
        time.sleep(1)
    if campaign.supervisor_pid() is not None:
        raise CampaignError(f"still running after {wait_s:.0f} s; see {campaign.logs}")
    return True


def pause(name: str, resume: bool, root: Path | None = None) -> None:
    campaign = Campaign(name, root)
    campaign.definition()
    if signal_group(campaign, signal.SIGCONT if resume else signal.SIGSTOP) is None:
        print(f"campaign {name} is not running")
        return
    campaign.event("continue" if resume else "pause")  # RUN.md lists the pauses of each stretch
    if resume:
        print(f"campaign {name}: continues")
    else:
        print(f"campaign {name}: paused, using no CPU; continue: {campaign.command('continue')}")
