"""A timed path in a process of its own: for what cannot share the benchmark's process, the reference
(c) with a public script's thread environment, and variants of (a) that change a process-wide setting
(trainer.keep_freed_memory: glibc's malloc, once set, stays set).

The protocol (PathProcess <-> serve): the parent starts `python -c <code> <args...>`; the child builds
its path, prints "ready", then for each line "<warmup> <steps>" on its stdin prints the images per
second of one measurement; closing its stdin ends it. The child waits idle between measurements, so
every path still runs in one rotation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import resnet_repro

from .paths import TimedPath

# The folders the child imports from: resnet_repro's (a checkout, or site-packages) and this checkout's,
# which holds benchmarks/ (the benchmark is not part of the package).
IMPORT_ROOTS = (Path(resnet_repro.__file__).resolve().parent.parent, Path(__file__).resolve().parents[2])


class PathProcess:
    """The parent's side: `path` timed by a child running `code` (Python) with `args`, in `environ`."""

    def __init__(self, path: TimedPath, code: str, args: list[str], environ: dict[str, str]):
        self.path = path
        environ = dict(environ)
        environ["PYTHONPATH"] = os.pathsep.join([*map(str, IMPORT_ROOTS), *filter(None, [environ.get("PYTHONPATH")])])
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (the child's stderr, closed by close())
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
            env=environ,
        )
        self.reply()  # "ready"

    def reply(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"the process of path {self.path.code} failed:\n{self.log.read()[-3000:]}")
        return line.strip()

    def measure(self, warmup: int, steps: int) -> float:
        self.process.stdin.write(f"{warmup} {steps}\n")
        return float(self.reply())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        self.log.close()


def serve(harness) -> None:
    """The child's side: measure `harness` (anything with measure(warmup, steps)) on each request."""
    warnings.simplefilter("ignore")
    print("ready", flush=True)
    for line in sys.stdin:
        warmup, steps = map(int, line.split())
        print(f"{harness.measure(warmup, steps):.6f}", flush=True)
