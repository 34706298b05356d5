"""What code and machine made a result: `code_commit()` (runs, reports and benchmarks name it), and
the environments a run trained in (code, precision, device, compile, torch: trained_with.json, or an
older run's trained_with.txt) as a line each. A run records its environment each time it starts or
resumes (RunDir.record_environment); the report and the campaign's RUN.md print them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

# What "the code" is, for code_commit: a change to results/, notebooks/ or the README changes no run.
CODE_PATHS = (":/resnet_repro", ":/run.py", ":/pyproject.toml")
# A built (non-editable) package has no git beside it: setup.py writes the checkout's commit here at build time.
BUILT_FROM = Path(__file__).resolve().parent / "built_from.txt"


def code_commit() -> str:
    """The commit of this code: from git where the package is a checkout's ('+ uncommitted changes' where
    the code, CODE_PATHS, differs from it); for an installed package, the commit it was built from and
    the distribution's version ("9f3c2a1b4d (resnet-repro 0.1.0, installed)"); else 'unknown'."""
    return checkout_commit(Path(__file__).resolve().parent) or installed_commit() or "unknown"


def checkout_commit(package: Path) -> str | None:
    """The commit of the git checkout whose top folder holds `package`; None if `package` is not in one
    (an install into site-packages, even one inside some other repository, such as a venv in a checkout)."""
    here = str(package)
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True, timeout=20
        )
        if top.returncode or Path(top.stdout.strip()).resolve() != package.parent.resolve():
            return None
        sha = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=here, capture_output=True, text=True, timeout=20
        )
        if sha.returncode:
            return None
        # --no-optional-locks: never take the index lock of a working tree others are using
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=20,
        )
        return sha.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def installed_commit() -> str | None:
    """An installed package's commit (BUILT_FROM) and version; None where neither is known."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        installed = f"resnet-repro {version('resnet-repro')}, installed"
    except PackageNotFoundError:
        installed = None
    built = BUILT_FROM.read_text().strip() if BUILT_FROM.is_file() else ""
    if built:
        return f"{built} ({installed})" if installed else built
    return f"commit unknown ({installed})" if installed else None


# trained_with.txt's lines, e.g. "code 60b8b6f + uncommitted changes, bf16-mixed on cpu, torch 2.14.1"
_ENVIRONMENT_LINE = re.compile(r"code (?P<code>.+), (?P<precision>\S+) on (?P<device>\S+), torch (?P<torch>\S+)")


def parse_environment_text(line: str) -> dict:
    """A line of an old trained_with.txt as the dict trained_with.json holds; {"note": line} if it is not one."""
    match = _ENVIRONMENT_LINE.fullmatch(line.strip())
    return match.groupdict() if match else {"note": line.strip()}


def environment_text(environment: dict) -> str:
    """One environment in a line: "code c0ffee, bf16-mixed on cpu (AMD EPYC 9B14), compiled, torch 2.14.1"."""
    if set(environment) == {"note"}:
        return environment["note"]
    hardware = environment.get("gpu") or environment.get("cpu")
    text = f"code {environment.get('code', 'unknown')}, {environment.get('precision', '?')} on {environment.get('device', '?')}"
    text += f" ({hardware})" if hardware else ""
    compile = environment.get("compile")
    if compile is not None:  # runs recorded before the compile setting say nothing of it
        text += ", eager" if compile == "false" else ", compiled" if compile == "true" else f", compiled ({compile})"
    if environment.get("threads"):
        text += f", {environment['threads']} threads"
    return text + f", torch {environment.get('torch', '?')}"
