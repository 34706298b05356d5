"""A run names the code it trained with: a checkout's commit from git, an installed package's from
the file its build wrote (setup.py), never the commit of some other repository around it."""

import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

from conftest import REPO

from resnet_repro import trained_with


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def repository_with(tmp_path, package_at: str):
    """A git repository holding a copy of the package at `package_at` (and setup.py, pyproject.toml beside it)."""
    top = tmp_path / "repo"
    where = top / package_at
    shutil.copytree(REPO / "resnet_repro", where / "resnet_repro", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, where / name)
    git("init", "-q", cwd=top)
    git("add", ".", cwd=top)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=top)
    return top, where


def test_a_checkout_names_its_commit_and_a_package_inside_another_repository_does_not(tmp_path):
    top, _ = repository_with(tmp_path / "a", ".")
    assert trained_with.checkout_commit(top / "resnet_repro") == git("rev-parse", "--short=10", "HEAD", cwd=top)
    top, where = repository_with(tmp_path / "b", "venv/site-packages")  # e.g. a venv inside a checkout
    assert trained_with.checkout_commit(where / "resnet_repro") is None


def test_a_built_package_records_the_commit_it_was_built_from(tmp_path, monkeypatch):
    top, _ = repository_with(tmp_path, ".")
    lib = tmp_path / "lib"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(lib)],
        cwd=top,
        check=True,
        capture_output=True,
    )
    built = lib / "resnet_repro" / "built_from.txt"
    assert built.read_text().strip() == git("rev-parse", "--short=10", "HEAD", cwd=top)
    monkeypatch.setattr(trained_with, "BUILT_FROM", built)
    assert trained_with.installed_commit().startswith(built.read_text().strip() + " (resnet-repro ")
    monkeypatch.setattr(trained_with, "BUILT_FROM", tmp_path / "absent.txt")  # an install built without git
    try:
        expected = f"commit unknown (resnet-repro {version('resnet-repro')}, installed)"
    except PackageNotFoundError:
        expected = None
    assert trained_with.installed_commit() == expected
