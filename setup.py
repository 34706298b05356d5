"""setuptools' one hook (everything else is in pyproject.toml): a built package records the commit it
was built from, in resnet_repro/built_from.txt, so that a non-editable install's runs, reports and
benchmarks name their code (trained_with.code_commit) as a checkout's do. An editable install needs no
file: its code is the checkout, and git says which commit."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def checkout_commit() -> str | None:
    """trained_with.checkout_commit, loaded from the file (importing the package would need its dependencies)."""
    spec = importlib.util.spec_from_file_location("trained_with", HERE / "resnet_repro" / "trained_with.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.checkout_commit(HERE / "resnet_repro")


class BuildPyWithCommit(build_py):
    def run(self):
        super().run()
        commit = None if self.editable_mode else checkout_commit()
        if commit:  # outside a checkout (an sdist), a built_from.txt it carries is kept as it is
            target = Path(self.build_lib) / "resnet_repro" / "built_from.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(commit + "\n")


setup(cmdclass={"build_py": BuildPyWithCommit})
