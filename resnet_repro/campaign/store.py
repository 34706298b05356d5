"""A campaign's folder: its definition, its runs' directories and states, its events, its supervisor's pid."""

from __future__ import annotations

import datetime
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..machine import read_cpu, usable_cores

HOME_ENV = "RESNET_REPRO_CAMPAIGNS"


class CampaignError(ValueError):
    """A bad command or setting, found before any work starts; the message names the fix."""


def read_definition_file(path: Path) -> dict:
    """A campaign file (conf/campaign/<name>.yaml) as a mapping, or CampaignError in one line naming the fix:
    not YAML, not a mapping (a list, an empty file), runs that are not a list of run.py override lines."""
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or _first_line(e)
        raise CampaignError(f"{path} is not valid YAML ({problem}{where}); fix the file") from None
    except (OSError, ValueError) as e:  # ValueError: bytes that are not UTF-8
        raise CampaignError(f"cannot read {path} ({_first_line(e)}); fix the file or give another") from None
    example = "see resnet_repro/conf/campaign/evidence.yaml"
    if not isinstance(spec, dict):
        what = "an empty file" if spec is None else f"a {type(spec).__name__}"
        raise CampaignError(f"{path} is {what}, not a campaign (a mapping of jobs:, threads:, runs:); {example}")
    runs = spec.get("runs")
    if runs is not None and (not isinstance(runs, list) or not all(isinstance(r, str) and r.strip() for r in runs)):
        raise CampaignError(
            f"{path}: runs must be a list of run.py override lines, e.g. '- arch=plain depth=20', "
            f"not {str(runs)[:60]}; {example}"
        )
    return spec


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def home() -> Path:
    return Path(os.environ.get(HOME_ENV, "~/resnet-repro-campaigns")).expanduser()


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def cpu() -> dict:
    """The CPU this process runs on, as the results name it: model name, family/model, SIMD flags."""
    this = read_cpu()
    return {
        "name": this.name or "unknown",
        "family": this.family or "?",
        "model": this.model or "?",
        "cores": usable_cores(),
        "simd": " ".join(this.simd),
    }


@dataclass(frozen=True)
class Run:
    """One run of a campaign: its `run.py` overrides, where its directory is, and its length."""

    overrides: tuple[str, ...]
    experiment: str  # the config's name=, the folder under runs/ and results/
    run_id: str  # <arch>-<depth>[-<shortcut>]/seed<k>
    depth: int
    steps: int

    @classmethod
    def of(cls, planned: dict) -> Run:
        """A run as campaign.json records it (launch.plan_runs)."""
        return cls(
            tuple(planned["overrides"]), planned["experiment"], planned["run_id"], planned["depth"], planned["steps"]
        )

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.run_id}"


def positive_whole(value) -> bool:
    """A whole number >= 1 (not True, which Python counts as 1): jobs, threads, a run's depth and steps."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _planned_run(run) -> bool:
    """A run as launch.plan_runs records it: its override lines, experiment, run_id (a folder inside the
    campaign's runs/), depth and steps, each of its kind."""
    return (
        isinstance(run, dict)
        and isinstance(run.get("overrides"), list)
        and all(isinstance(line, str) for line in run["overrides"])
        and isinstance(run.get("experiment"), str)
        and run["experiment"] not in ("", ".", "..")
        and "/" not in run["experiment"]
        and isinstance(run.get("run_id"), str)
        and not Path(run["run_id"]).is_absolute()
        and ".." not in Path(run["run_id"]).parts
        and positive_whole(run.get("depth"))
        and positive_whole(run.get("steps"))
    )


# campaign.json's keys besides runs (launch.start writes them), with what each must be
DEFINITION_KEYS = {
    "jobs": positive_whole,
    "threads": positive_whole,
    "commit": lambda v: isinstance(v, str),
    "data_root": lambda v: isinstance(v, str),
    "results_dir": lambda v: isinstance(v, str),
}


class Campaign:
    def __init__(self, name: str, root: Path | None = None):
        self.name = name
        self.home_given = root  # a --home given: every hint printed for this campaign keeps it
        self.dir = (root or home()) / name
        self.definition_file = self.dir / "campaign.json"
        self.code = self.dir / "code"
        self.runs_dir = self.dir / "runs"
        self.logs = self.dir / "logs"
        self.events_file = self.dir / "events.jsonl"
        self.pid_file = self.dir / "supervisor.pid"

    def command(self, verb: str) -> str:
        """The command line that does `verb` to this campaign, as a hint to print (with its --home, if given)."""
        where = f" --home {self.home_given}" if self.home_given is not None else ""
        return f"python -m resnet_repro.campaign {verb} {self.name}{where}"

    # ---- definition
    def definition(self) -> dict:
        try:
            text = self.definition_file.read_text()
        except FileNotFoundError:
            from .carry import archive

            carried = archive(self.name)
            where = f" (it resumes from {carried}, carried here in the checkout)" if carried.is_file() else ""
            raise CampaignError(
                f"campaign {self.name} has not been started on this machine (no {self.definition_file}); "
                f"start it: {self.command('start')}{where}"
            ) from None
        except (OSError, ValueError) as e:
            raise CampaignError(
                f"cannot read {self.definition_file} ({_first_line(e)}); {self._definition_fix}"
            ) from None
        try:
            definition = json.loads(text)
        except ValueError as e:  # cut short: a full disk, a copy interrupted
            raise CampaignError(
                f"unreadable {self.definition_file} ({_first_line(e)}); {self._definition_fix}"
            ) from None
        runs = definition.get("runs") if isinstance(definition, dict) else None
        if not isinstance(runs, list) or not all(_planned_run(r) for r in runs):
            raise CampaignError(f"{self.definition_file} does not list a campaign's runs; {self._definition_fix}")
        # what status, the supervisor and collect read besides the runs (a campaign.json edited by hand, or not
        # a campaign's): each of the right kind, or one line here rather than a traceback there
        wrong = [key for key, ok in DEFINITION_KEYS.items() if not ok(definition.get(key))]
        if wrong:
            raise CampaignError(
                f"{self.definition_file} is not a campaign's record ({', '.join(wrong)}: missing or of the wrong "
                f"kind); {self._definition_fix}"
            )
        return definition

    def recorded(self) -> dict:
        """campaign.json if the campaign was started, else {} (a damaged one: CampaignError, as `definition`)."""
        return self.definition() if self.definition_file.exists() else {}

    @property
    def _definition_fix(self) -> str:
        return (
            f"`campaign start` writes it: restore it, or move it away and start the campaign again "
            f"(python -m resnet_repro.campaign start {self.name}; finished runs are kept)"
        )

    def runs(self) -> list[Run]:
        return [Run.of(planned) for planned in self.definition()["runs"]]

    # ---- runs
    def run_dir(self, run: Run) -> Path:
        return self.runs_dir / run.experiment / run.run_id

    def run_status(self, run: Run) -> dict:
        try:
            status = json.loads((self.run_dir(run) / "status.json").read_text())
        except (OSError, ValueError):
            return {}
        return status if isinstance(status, dict) else {}  # a status.json that is not a run's: the run says so

    def run_state(self, run: Run) -> str:
        return self.run_status(run).get("state", "waiting")

    def finished(self, run: Run) -> bool:
        return self.run_state(run) in ("done", "diverged")

    # ---- events
    def event(self, kind: str, **info) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.events_file, "a") as f:
            f.write(json.dumps({"event": kind, "time": now(), "host": socket.gethostname(), **info}) + "\n")

    def events(self) -> list[dict]:
        if not self.events_file.is_file():
            return []
        events = []
        for line in self.events_file.read_text(errors="replace").splitlines():
            try:  # a line torn by a writer killed mid-write (or a full disk) is not an event: skipped
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

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
