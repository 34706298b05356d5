"""Campaigns: long sweeps that outlive the shell, and the session, that started them.

    python -m resnet_repro.campaign start evidence     # start, or resume where it stopped
    python -m resnet_repro.campaign status evidence    # runs done, iterations, ETA
    python -m resnet_repro.campaign stop evidence      # every run checkpoints its step and exits
    python -m resnet_repro.campaign pause evidence     # SIGSTOP (for a benchmark); `continue` resumes
    python -m resnet_repro.campaign collect evidence   # finished runs -> results/<experiment>/, report, RUN.md

A campaign is a list of runs (conf/campaign/<name>.yaml) trained in the background at the
lowest priority (nice 19), `jobs` at a time, each a plain `run.py` process. It lives outside the
work tree, in `$RESNET_REPRO_CAMPAIGNS/<name>/` (default `~/resnet-repro-campaigns/<name>/`):

    campaign.json    the definition as started: runs, jobs, threads, data, the pinned commit
    code/            a clone of the repository at that commit: editing the checkout never
                     changes a run halfway (`start --update-code` moves it to the current HEAD)
    runs/<experiment>/<arch>-<depth>/seed<k>/   ordinary run directories (resume exactly after a kill)
    logs/            one log per run, and the supervisor's
    events.jsonl     every start, stop and run exit, with the commit and the CPU it ran on

Each run that finishes is copied into `<results>/<experiment>/runs/` of the checkout that
started the campaign (config, status, metrics, provenance, final weights; never a checkpoint),
ready to commit; `collect` does the same for all of them and regenerates the report and RUN.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = Path(__file__).resolve().parent / "conf"  # the configs ship inside the package (conf/ links here)
CAMPAIGN_CONFIGS = CONF_DIR / "campaign"
HOME_ENV = "RESNET_REPRO_CAMPAIGNS"
# The files that make a run's record in results/; last.ckpt stays out (its weights alone are kept).
RECORD_FILES = ("config.yaml", "status.json", "metrics.csv", "dataset.txt", "trained_with.txt", "trained_with.json")


class CampaignError(ValueError):
    """A bad command or setting, found before any work starts; the message names the fix."""


def home() -> Path:
    return Path(os.environ.get(HOME_ENV, "~/resnet-repro-campaigns")).expanduser()


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def cpu() -> dict:
    """The CPU this process runs on, as the results name it: model name, family/model, SIMD flags."""
    info = {"model name": "unknown", "cpu family": "?", "model": "?"}
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key in info and info[key] in ("unknown", "?"):
                info[key] = value
            elif key == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    simd = [f for f in flags if f.startswith(("avx", "amx"))]
    return {"name": info["model name"], "family": info["cpu family"], "model": info["model"],
            "cores": os.cpu_count(), "simd": " ".join(simd)}  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One run of a campaign: `run.py` overrides, and where its directory is."""

    overrides: tuple[str, ...]
    experiment: str
    run_id: str  # <arch>-<depth>[-<shortcut>]/seed<k>

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.run_id}"


class Campaign:
    def __init__(self, name: str, root: Path | None = None):
        self.name = name
        self.dir = (root or home()) / name
        self.definition_file = self.dir / "campaign.json"
        self.code = self.dir / "code"
        self.runs_dir = self.dir / "runs"
        self.logs = self.dir / "logs"
        self.events_file = self.dir / "events.jsonl"
        self.pid_file = self.dir / "supervisor.pid"

    # ---- definition
    def definition(self) -> dict:
        try:
            return json.loads(self.definition_file.read_text())
        except FileNotFoundError:
            raise CampaignError(
                f"no campaign {self.name!r} in {self.dir.parent}; start it: python -m resnet_repro.campaign start {self.name}"
            ) from None

    def runs(self) -> list[Run]:
        return [Run(tuple(r["overrides"]), r["experiment"], r["run_id"]) for r in self.definition()["runs"]]

    def run_dir(self, run: Run) -> Path:
        return self.runs_dir / run.experiment / run.run_id

    def event(self, kind: str, **info) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.events_file, "a") as f:
            f.write(json.dumps({"event": kind, "time": now(), "host": socket.gethostname(), **info}) + "\n")

    def events(self) -> list[dict]:
        if not self.events_file.is_file():
            return []
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]

    # ---- the supervisor process
    def supervisor_pid(self) -> int | None:
        """The live supervisor's pid, or None (a pid file left by a killed one is not trusted)."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if "resnet_repro.campaign" in cmdline and self.name in cmdline else None

    def paused(self, pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
        except (OSError, IndexError):
            return False


def definition_path(name: str) -> Path:
    """conf/campaign/<name>.yaml, or a campaign file given by its path (its name is the file's stem)."""
    return Path(name) if name.endswith((".yaml", ".yml")) else CAMPAIGN_CONFIGS / f"{name}.yaml"


def load_definition(name: str) -> dict:
    path = definition_path(name)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CAMPAIGN_CONFIGS.glob("*.yaml"))) or "none"
        raise CampaignError(f"no campaign definition {path}; known campaigns: {known}")
    spec = yaml.safe_load(path.read_text())
    for key, value in (("jobs", spec.get("jobs")), ("threads", spec.get("threads"))):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CampaignError(f"{path}: {key}={value} must be a positive whole number")
    if not spec.get("runs"):
        raise CampaignError(f"{path}: no runs listed under runs:")
    return spec


def plan_runs(overrides_list: list[str], runs_dir: Path, data_root: Path) -> list[dict]:
    """Compose every run's config as run.py will (so a bad one is refused now) and name its directory."""
    from hydra import compose, initialize_config_dir

    from .train import ConfigError, check_config

    planned = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for line in overrides_list:
            overrides = line.split()
            try:
                cfg = compose("config", overrides=[*overrides, f"out_dir={runs_dir}", f"data.root={data_root}"])
                check_config(cfg)
            except ConfigError as e:
                raise CampaignError(f"run '{line}': {e}") from None
            except Exception as e:  # Hydra's own errors (an unknown key, a bad value)
                raise CampaignError(f"run '{line}': {str(e).splitlines()[0]}") from None
            planned.append({"overrides": overrides, "experiment": str(cfg.name), "run_id": str(cfg.run_id)})
    labels = [f"{r['experiment']}/{r['run_id']}" for r in planned]
    if len(set(labels)) != len(labels):
        raise CampaignError(f"two runs of the campaign share a directory: {labels}; make each run distinct")
    return planned


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise CampaignError(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip()


def pin_code(campaign: Campaign, update: bool) -> str:
    """A clone of this repository at its HEAD commit (made once; moved only by --update-code)."""
    head = git("rev-parse", "HEAD", cwd=REPO)
    if git("status", "--porcelain", "--untracked-files=no", "--", "resnet_repro", "conf", "run.py", cwd=REPO):
        print("note: the checkout has uncommitted changes; the campaign runs the committed HEAD without them")
    if not (campaign.code / ".git").exists():
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(campaign.code)], check=True)
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
    previous = json.loads(campaign.definition_file.read_text()) if campaign.definition_file.is_file() else {}
    # A campaign started from a file elsewhere resumes by its name alone: campaign.json has its runs.
    spec = previous["spec"] if "spec" in previous and not definition_path(name).is_file() else load_definition(name)
    name = campaign.name
    if pid := campaign.supervisor_pid():
        print(f"campaign {name} is already running (supervisor pid {pid}); status: python -m resnet_repro.campaign status {name}")
        return 0
    data = Path(data_root or previous.get("data_root") or default_data_root()).expanduser().resolve()
    if not data.exists():
        raise CampaignError(f"no CIFAR-10 at {data}; pass --data-root <folder or .tar.xz> (README, Data)")
    results_dir = Path(results or previous.get("results_dir") or REPO / "results").expanduser().resolve()
    runs = plan_runs(spec["runs"], campaign.runs_dir, data)
    campaign.dir.mkdir(parents=True, exist_ok=True)
    commit = pin_code(campaign, update_code)
    definition = {"name": name, "runs": runs, "jobs": spec["jobs"], "threads": spec["threads"], "data_root": str(data),
                  "results_dir": str(results_dir), "commit": commit, "spec": spec}  # fmt: skip
    campaign.definition_file.write_text(json.dumps(definition, indent=1) + "\n")
    campaign.logs.mkdir(exist_ok=True)
    log = open(campaign.logs / "supervisor.log", "a")
    # The supervisor and its runs: a session of their own (a closed shell does not end them), nice 19
    # (tests and editing keep the CPU when they need it), the pinned code first on sys.path.
    process = subprocess.Popen(
        [sys.executable, "-m", "resnet_repro.campaign", "_supervise", name, "--home", str(campaign.dir.parent)],
        cwd=campaign.code, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=lambda: os.nice(19),
    )  # fmt: skip
    for _ in range(50):  # wait for it to claim the pid file, so `status` right after is true
        if campaign.supervisor_pid() == process.pid or process.poll() is not None:
            break
        time.sleep(0.1)
    if process.poll() is not None:
        print(f"error: the supervisor exited at once (code {process.returncode}); see {campaign.logs / 'supervisor.log'}", file=sys.stderr)  # fmt: skip
        return 1
    print(f"campaign {name}: started (pid {process.pid}, nice 19, code {commit[:10]}), "
          f"{len(runs)} runs, {spec['jobs']} at a time, {spec['threads']} thread(s) each\n"
          f"  status: python -m resnet_repro.campaign status {name}\n"
          f"  stop:   python -m resnet_repro.campaign stop {name}")  # fmt: skip
    return 0


def supervise(name: str, root: Path) -> int:
    """The background process: keeps `jobs` runs going until all are finished or it is told to stop."""
    campaign = Campaign(name, root)
    definition = campaign.definition()
    campaign.pid_file.write_text(str(os.getpid()))
    campaign.event("start", commit=definition["commit"], cpu=cpu(), pid=os.getpid())
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
    pending = [run for run in campaign.runs() if run_state(campaign, run) not in ("done", "diverged")]
    failed_here: set[Run] = set()
    while (pending and not stopping) or children:
        while pending and not stopping and len(children) < definition["jobs"]:
            run = pending.pop(0)
            command = [sys.executable, "run.py", *run.overrides, f"out_dir={campaign.runs_dir}",
                       f"data.root={definition['data_root']}", f"trainer.threads={definition['threads']}",
                       "trainer.progress_bar=false", "report=false"]  # fmt: skip
            log = open(campaign.logs / f"{run.label.replace('/', '_')}.log", "a")
            children[run] = subprocess.Popen(command, cwd=campaign.code, env=env, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            campaign.event("run start", run=run.label, pid=children[run].pid, step=run_step(campaign, run))
        time.sleep(2)
        for run, child in list(children.items()):
            if child.poll() is None:
                continue
            del children[run]
            state = run_state(campaign, run)
            campaign.event("run exit", run=run.label, code=child.returncode, state=state, step=run_step(campaign, run))
            if state in ("done", "diverged"):
                try:
                    copy_record(campaign, run, Path(definition["results_dir"]))
                except Exception as e:  # collect can redo it; the campaign goes on
                    print(f"[campaign] could not copy {run.label} into results: {e}", flush=True)
            elif not stopping:  # refused or crashed: not retried in this session (no loop); `start` retries
                failed_here.add(run)
                print(f"[campaign] {run.label} exited with code {child.returncode}; see its log", flush=True)
    campaign.event("stop", reason="told to stop" if stopping else "all runs finished or failed",
                   failed=[r.label for r in failed_here])  # fmt: skip
    campaign.pid_file.unlink(missing_ok=True)
    return 0


def run_state(campaign: Campaign, run: Run) -> str:
    try:
        return json.loads((campaign.run_dir(run) / "status.json").read_text()).get("state", "unknown")
    except (OSError, ValueError):
        return "waiting"


def run_step(campaign: Campaign, run: Run) -> int:
    try:
        return int(json.loads((campaign.run_dir(run) / "status.json").read_text()).get("step", 0))
    except (OSError, ValueError):
        return 0


def signal_group(campaign: Campaign, sig: int) -> int | None:
    pid = campaign.supervisor_pid()
    if pid is not None:
        os.killpg(os.getpgid(pid), sig)
    return pid


def stop(name: str, root: Path | None = None, wait_s: float = 600) -> int:
    campaign = Campaign(name, root)
    campaign.definition()
    pid = campaign.supervisor_pid()
    if pid is None:
        print(f"campaign {name} is not running")
        return 0
    if campaign.paused(pid):
        signal_group(campaign, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    signal_group(campaign, signal.SIGTERM)
    print(f"campaign {name}: stopping (each run checkpoints the step it is on) ...", flush=True)
    deadline = time.monotonic() + wait_s
    while campaign.supervisor_pid() is not None and time.monotonic() < deadline:
        time.sleep(1)
    if campaign.supervisor_pid() is not None:
        print(f"error: still running after {wait_s:.0f} s; see {campaign.logs}", file=sys.stderr)
        return 1
    status(name, root)
    return 0


def pause(name: str, resume: bool, root: Path | None = None) -> int:
    campaign = Campaign(name, root)
    campaign.definition()
    pid = signal_group(campaign, signal.SIGCONT if resume else signal.SIGSTOP)
    if pid is None:
        print(f"campaign {name} is not running")
        return 0
    print(f"campaign {name}: {'continues' if resume else 'paused (no CPU used; continue with: python -m resnet_repro.campaign continue ' + name + ')'}")  # fmt: skip
    return 0


def progress(run_dir: Path) -> dict:
    """Step, seconds per iteration (evaluations included) and the latest errors of a run, from its files."""
    out = {"step": 0, "s_per_it": None, "train": None, "test": None}
    try:
        status_record = json.loads((run_dir / "status.json").read_text())
        out["step"] = int(status_record.get("step", 0))
    except (OSError, ValueError):
        return out
    try:
        import csv

        with open(run_dir / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        rows = []
    for row in rows:  # metrics rows come every log_every steps, status only at checkpoints
        out[row["split"]] = float(row["error"])
        out["step"] = max(out["step"], int(row["step"]))
    steps = [(int(r["step"]), float(r["elapsed_s"])) for r in rows if r["split"] == "train"]
    if len(steps) >= 2:  # the latest stretch: the machine may have changed since the first
        (s0, t0), (s1, t1) = steps[max(0, len(steps) - 20)], steps[-1]
        if s1 > s0 and t1 > t0:
            out["s_per_it"] = (t1 - t0) / (s1 - s0)
    return out


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def status(name: str, root: Path | None = None) -> int:
    campaign = Campaign(name, root)
    definition = campaign.definition()
    pid = campaign.supervisor_pid()
    state = "not running" if pid is None else ("paused" if campaign.paused(pid) else f"running (pid {pid}, nice 19)")
    print(f"campaign {name}: {state}; code {definition['commit'][:10]}; {definition['jobs']} at a time, "
          f"{definition['threads']} thread(s) each; runs in {campaign.runs_dir}")  # fmt: skip
    rates: dict[int, float] = {}  # seconds per iteration by depth, measured; used for runs not started
    rows = []
    for run in campaign.runs():
        cfg = _overrides(run)
        depth, steps = int(cfg.get("depth", 20)), int(_steps(campaign, run))
        p = progress(campaign.run_dir(run))
        if p["s_per_it"]:
            rates.setdefault(depth, p["s_per_it"])
        rows.append((run, depth, steps, p, run_state(campaign, run)))
    total_left, steps_done, steps_all = 0.0, 0, 0
    for run, depth, steps, p, run_status in rows:
        rate = p["s_per_it"] or _scaled_rate(rates, depth)
        left = 0 if run_status in ("done", "diverged") else steps - p["step"]
        steps_done, steps_all = steps_done + steps - left, steps_all + steps
        eta = left * rate if rate else None
        total_left += eta or 0
        errors = "".join(f"  {k} {p[k]:.1%}" for k in ("train", "test") if p[k] is not None)
        speed = f"  {p['s_per_it']:.2f} s/it" if p["s_per_it"] else ""
        when = f"  ETA {hours(eta)}" if eta else ""
        if run_status == "running" and pid is None:
            run_status = "stopped"
        print(f"  {run.label:28s} {run_status:9s} step {p['step']:>6,}/{steps:<6,}{errors}{speed}{when}")
    done = sum(r[4] in ("done", "diverged") for r in rows)
    print(f"  {len(rows)} runs: {done} finished; iterations {steps_done:,} of {steps_all:,} ({steps_done / steps_all:.0%}); "
          f"about {hours(total_left / definition['jobs'])} of compute left at the measured rates"
          + ("" if len(rates) else " (no rate measured yet)"))  # fmt: skip
    return 0


def _overrides(run: Run) -> dict:
    return dict(o.split("=", 1) for o in run.overrides if "=" in o)


def _steps(campaign: Campaign, run: Run) -> int:
    try:
        return int(json.loads((campaign.run_dir(run) / "status.json").read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return int(_overrides(run).get("steps", {"tenth": 6400, "quick": 600}.get(run.experiment, 64000)))


def _scaled_rate(rates: dict[int, float], depth: int) -> float | None:
    """A run not yet measured: the nearest measured depth's rate, scaled by the number of layers."""
    if not rates:
        return None
    nearest = min(rates, key=lambda d: abs(d - depth))
    return rates[nearest] * (depth - 2) / (nearest - 2)


# ---- results
def copy_record(campaign: Campaign, run: Run, results_dir: Path) -> Path:
    """A finished run's record into <results>/<experiment>/runs/<run_id>/: its files and final weights.
    An existing copy that differs is never overwritten (it is reported)."""
    source = campaign.run_dir(run)
    target = results_dir / run.experiment / "runs" / run.run_id
    target.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if not (source / name).is_file():
            continue
        if (target / name).is_file() and (target / name).read_bytes() != (source / name).read_bytes():
            raise CampaignError(f"{target / name} exists and differs from the run's; move it away to collect again")
        shutil.copy2(source / name, target / name)
    weights = target / "weights.pt"
    if not weights.is_file() and (source / "last.ckpt").is_file():
        import torch

        state = torch.load(source / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        torch.save({"state_dict": {k: v for k, v in state.items() if k.startswith("model.")}}, weights)
    return target


def collect(name: str, root: Path | None = None, report: bool = True) -> int:
    """Every finished run into results/, then per experiment: the report and RUN.md."""
    campaign = Campaign(name, root)
    definition = campaign.definition()
    results_dir = Path(definition["results_dir"])
    experiments: dict[str, list[Run]] = {}
    for run in campaign.runs():
        experiments.setdefault(run.experiment, []).append(run)
        if run_state(campaign, run) in ("done", "diverged"):
            print(f"  {run.label}: -> {copy_record(campaign, run, results_dir)}")
    for experiment, runs in experiments.items():
        folder = results_dir / experiment
        if not (folder / "runs").is_dir():
            continue
        if report:
            from .report import make_report

            make_report(folder / "runs", folder, command=f"python -m resnet_repro.campaign collect {name}")
        (folder / "RUN.md").write_text(run_md(campaign, definition, experiment, runs))
        print(f"  wrote {folder / 'RUN.md'}")
    return 0


def run_md(campaign: Campaign, definition: dict, experiment: str, runs: list[Run]) -> str:
    events = campaign.events()
    lines = [
        f"# How `results/{experiment}/` was made",
        "",
        f"Campaign `{campaign.name}` (conf/campaign/{campaign.name}.yaml): each run is",
        f"`python run.py {{overrides}} out_dir=<campaign>/runs data.root={definition['data_root']} "
        f"trainer.threads={definition['threads']}`, {definition['jobs']} at a time at nice 19, started with",
        f"`python -m resnet_repro.campaign start {campaign.name}` and resumed from its checkpoints in later sessions.",
        f"Data: the CIFAR-10 JPEG (q75) copy, `{Path(definition['data_root']).name}`. Report and this file:",
        f"`python -m resnet_repro.campaign collect {campaign.name}`.",
        "",
        "| run | overrides | state | steps | wall time (training + evaluation) | final train / test error | trained with |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for run in runs:
        folder = definition["results_dir"] + f"/{experiment}/runs/{run.run_id}"
        p = progress(Path(folder))
        try:
            rows = (Path(folder) / "metrics.csv").read_text().strip().splitlines()
            elapsed = float(rows[-1].split(",")[-1])
        except (OSError, ValueError, IndexError):
            elapsed = None
        trained = _trained_with(Path(folder))
        errors = f"{p['train']:.2%} / {p['test']:.2%}" if p["train"] is not None and p["test"] is not None else ""
        lines.append(f"| {run.run_id} | `{' '.join(run.overrides)}` | {run_state(campaign, run)} | "
                     f"{p['step']:,} | {hours(elapsed) if elapsed else ''} | {errors} | {trained} |")  # fmt: skip
    lines += ["", "## Sessions (machines and commits)", ""]
    for e in events:
        if e["event"] == "start":
            c = e.get("cpu", {})
            lines.append(f"- {e['time']} start on {e['host']}: {c.get('name')} (family {c.get('family')} model "
                         f"{c.get('model')}, {c.get('cores')} cores; {c.get('simd')}), code {e.get('commit', '')[:10]}")  # fmt: skip
        elif e["event"] == "stop":
            lines.append(f"- {e['time']} stop: {e.get('reason')}")
        elif e["event"] == "run exit" and e["run"].startswith(experiment + "/"):
            lines.append(f"  - {e['time']} {e['run']} exited (code {e['code']}) at step {e['step']:,}: {e['state']}")
    return "\n".join(lines) + "\n"


def _trained_with(folder: Path) -> str:
    if (folder / "trained_with.json").is_file():
        return "; ".join(json.dumps(x) for x in json.loads((folder / "trained_with.json").read_text()))
    if (folder / "trained_with.txt").is_file():
        return "; ".join(x for x in (folder / "trained_with.txt").read_text().splitlines() if x.strip())
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_repro.campaign", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "pause", "continue", "collect", "_supervise"])
    parser.add_argument("name", help="the campaign: conf/campaign/<name>.yaml (start also takes a .yaml path)")
    parser.add_argument("--data-root", help="CIFAR-10 for the runs (default: $CIFAR10_ROOT or ../shared/data's copy)")
    parser.add_argument("--results", help="where finished runs are copied (default: this checkout's results/)")
    parser.add_argument("--update-code", action="store_true", help="start: move the pinned code to this checkout's HEAD")
    parser.add_argument("--no-report", action="store_true", help="collect: copy runs and write RUN.md only")
    parser.add_argument("--home", help=f"campaigns folder (default: ${HOME_ENV} or ~/resnet-repro-campaigns)")
    args = parser.parse_args(argv)
    root = Path(args.home).expanduser() if args.home else None
    try:
        if args.command == "start":
            return start(args.name, args.data_root, args.results, args.update_code, root)
        if args.command == "_supervise":
            return supervise(args.name, root or home())
        if args.command == "stop":
            return stop(args.name, root)
        if args.command in ("pause", "continue"):
            return pause(args.name, args.command == "continue", root)
        if args.command == "collect":
            return collect(args.name, root, report=not args.no_report)
        return status(args.name, root)
    except CampaignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
