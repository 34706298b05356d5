"""A campaign's folder: its definition, its runs' directories and states, its events, its supervisor's pid."""

from __future__ import annotations

import datetime
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..machine import read_cpu, usable_cores

HOME_ENV = "RESNET_REPRO_CAMPAIGNS"


class CampaignError(ValueError):
    """A bad command or setting, found before any work starts; the message names the fix."""


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
            return json.loads(self.definition_file.read_text())
        except FileNotFoundError:
            raise CampaignError(
                f"campaign {self.name} has not been started on this machine (no {self.definition_file}); "
                f"start it: {self.command('start')}"
            ) from None

    def runs(self) -> list[Run]:
        return [Run.of(planned) for planned in self.definition()["runs"]]

    # ---- runs
    def run_dir(self, run: Run) -> Path:
        return self.runs_dir / run.experiment / run.run_id

    def run_status(self, run: Run) -> dict:
        try:
            return json.loads((self.run_dir(run) / "status.json").read_text())
        except (OSError, ValueError):
            return {}

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
