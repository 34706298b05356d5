"""Every command in README.md and docs/*.md runs as written, in a fresh copy of the checkout.

The commands are the lines of the ```bash fences (a line ending in a backslash goes on in the next),
and each ```python fence is one program. Each runs from the copy's root, with the copy on PYTHONPATH
(standing in for the README's editable install), and must exit 0 without a traceback. Where training
would be long, a `run.py` command runs as its dry run (`dry_run=true` added): every run of it resolved
and its data found, as the real command does, and a few steps timed, nothing trained or written.

Two markers, both checked here:
    <command>   # not run in CI: <why>      this command is not run (why: a GPU, Slurm, hours of training)
    <!-- not run in CI: <why> -->           on the line before a fence: none of the block is run
and `# exit N: <what it says>` after a command that is meant to fail says the exit status it must have.
A command that names `../shared/` (the shared CIFAR-10 copy) is skipped where that is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHARED = ROOT.parent / "shared"

NOT_RUN = re.compile(r"#\s*not run in CI:\s*(.*)$")
BLOCK_NOT_RUN = re.compile(r"<!--\s*not run in CI:\s*(.*?)\s*-->")
EXIT = re.compile(r"#\s*exit (\d+):")
# What CI has none of: a command that needs one must say so with a marker.
NEEDS_WHAT_CI_LACKS = re.compile(
    r"hydra/launcher=slurm|\bsbatch\b|\bsalloc\b|\bsrun\b|nvidia-smi|accelerator=(cuda|gpu)"
)
TIMEOUT_S = 1800  # a dry run times a few steps of every net; on a loaded 2-core machine that is minutes


@dataclass(frozen=True)
class Command:
    doc: str  # README.md or docs/<file>
    line: int
    text: str  # as a user types it, the comment included
    language: str  # bash or python
    not_run: str | None = None  # why it is not run, or None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def exit_status(self) -> int:
        match = EXIT.search(self.text)
        return int(match.group(1)) if match else 0

    def as_run(self) -> str:
        """The command as this test runs it: `run.py` commands as their dry run."""
        command = re.sub(r"\s+#.*$", "", self.text) if self.language == "bash" else self.text
        if self.language == "bash" and re.match(r"python (run\.py|-m resnet_repro)\s", command):
            if "dry_run=true" not in command:
                command += " dry_run=true"
        return command


def fences(path: Path) -> list[tuple[str, int, list[str], str | None]]:
    """(language, first line number, lines, the block's not-run reason) of each fence in `path`."""
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\w+)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        block_marker = BLOCK_NOT_RUN.search(before)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        blocks.append((opening.group(1), i + 2, lines[i + 1 : end], block_marker.group(1) if block_marker else None))
        i = end + 1
    return blocks


def commands(path: Path) -> list[Command]:
    doc = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    found = []
    for language, first, lines, block_reason in fences(path):
        if language == "python":
            found.append(Command(doc, first, "\n".join(lines), "python", block_reason))
        if language not in ("bash", "sh", "shell"):
            continue
        text, start = "", None
        for number, line in enumerate(lines, first):
            if not text and (not line.strip() or line.lstrip().startswith("#")):
                continue
            start = start or number
            text += line.rstrip()
            if text.endswith("\\"):
                text = text[:-1] + " "
                continue
            marker = NOT_RUN.search(text)
            reason = block_reason if block_reason is not None else (marker.group(1) if marker else None)
            found.append(Command(doc, start, " ".join(text.split()), "bash", reason))
            text, start = "", None
    return found


ALL = [c for path in DOCS for c in commands(path)]
RUNNABLE = list({c.as_run(): c for c in ALL if c.not_run is None}.values())  # a command repeated runs once


def test_the_docs_have_commands_and_every_one_not_run_says_why():
    assert len(RUNNABLE) >= 5, [c.id for c in RUNNABLE]  # the parser finds them (the test cannot pass on none)
    assert any(c.doc == "README.md" and "run.py -m" in c.text for c in RUNNABLE)
    for c in ALL:
        if c.not_run is not None:
            assert c.not_run.strip(), f"{c.id}: `not run in CI:` must say why"
        else:
            assert not NEEDS_WHAT_CI_LACKS.search(c.text), (
                f"{c.id} needs a GPU or Slurm: mark it `# not run in CI: ...`"
            )


def test_the_parser_reads_markers_continuations_and_blocks(tmp_path):
    doc = tmp_path / "example.md"
    doc.write_text(
        "```bash\n# a comment line\npython run.py a=1 \\\n    b=2   # what it does\n"
        "python run.py c=3   # not run in CI: needs a GPU\npython run.py depth=21   # exit 2: refused\n```\n\n"
        "<!-- not run in CI: trains for hours -->\n```bash\npython -m resnet_repro.campaign start x\n```\n"
    )
    found = commands(doc)
    assert [(c.line, c.text, c.not_run) for c in found] == [
        (3, "python run.py a=1 b=2 # what it does", None),
        (5, "python run.py c=3 # not run in CI: needs a GPU", "needs a GPU"),
        (6, "python run.py depth=21 # exit 2: refused", None),
        (11, "python -m resnet_repro.campaign start x", "trains for hours"),
    ]
    assert found[0].as_run() == "python run.py a=1 b=2 dry_run=true"
    assert found[2].exit_status == 2 and found[0].exit_status == 0


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    """The checkout's files as a clone has them (tracked, and new files not ignored; no runs, no caches),
    beside a `shared/` that is the real one where this machine has it."""
    top = tmp_path_factory.mktemp("docs")
    copy = top / "resnet-repro"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True
    )
    if listed.returncode:
        pytest.skip("not a git checkout")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file() or source.is_symlink():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                (copy / name).symlink_to(os.readlink(source))
            else:
                shutil.copy2(source, copy / name)
    if SHARED.is_dir():
        (top / "shared").symlink_to(SHARED)
    return copy


def environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    env["RESNET_REPRO_CAMPAIGNS"] = str(copy.parent / "campaigns")  # never the user's campaigns
    env.pop("CIFAR10_ROOT", None)  # as on a user's machine: only what the command says
    return env


@pytest.mark.parametrize("command", RUNNABLE, ids=[c.id for c in RUNNABLE])
def test_the_command_runs_as_written(command, fresh_copy):
    if "../shared/" in command.text and not SHARED.is_dir():
        pytest.skip("the shared CIFAR-10 copy (../shared/data/) is not on this machine")
    argv = ["bash", "-c", command.as_run()] if command.language == "bash" else [sys.executable, "-c", command.text]
    done = subprocess.run(
        argv, cwd=fresh_copy, env=environment(fresh_copy), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    said = f"{command.id}: {command.as_run()}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == command.exit_status, said
    assert "Traceback" not in done.stderr, said


def test_the_campaign_file_of_the_docs_is_a_campaign(tmp_path):
    from resnet_repro.campaign.launch import load_definition, plan_runs

    data = SHARED / "data" / "cifar10-jpeg.tar.xz"
    if not data.exists():
        pytest.skip("the shared CIFAR-10 copy (../shared/data/) is not on this machine")
    blocks = [lines for language, _, lines, _ in fences(ROOT / "docs" / "campaigns.md") if language == "yaml"]
    assert blocks, "docs/campaigns.md shows a campaign file"
    for lines in blocks:
        path = tmp_path / "my-campaign.yaml"
        path.write_text("\n".join(lines) + "\n")
        spec = load_definition(str(path))
        planned = plan_runs(spec["runs"], tmp_path / "runs", data)  # each run resolved as run.py resolves it
        assert len(planned) == len(yaml.safe_load(path.read_text())["runs"])
