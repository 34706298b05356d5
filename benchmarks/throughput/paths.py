"""What the benchmark times: each path described as data, with the names a result prints for it.

    PROJECT                               (a) project, Lightning                            a
    BARE_LOOP                             (b) bare loop                                     b
    reference_path(4, "default")          (c) reference, 4 workers                          c4
    reference_path(2, "project")          (c) reference, 2 workers, project's OpenMP env    c2p
    variant_path("trainer.compile=true")  (a) with trainer.compile=true                     a trainer.compile=true

The label heads the table's columns and fills the CSV's path column; the code is the short name
of the list of every measurement. Both are the format of the committed results in results/bench/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["project", "bare", "reference"]
ThreadEnv = Literal["default", "project"]  # the OpenMP environment of a reference's process (threads.py)


@dataclass(frozen=True)
class TimedPath:
    kind: Kind  # project (a): through Lightning; bare (b): the same module in a plain loop; reference (c)
    overrides: tuple[str, ...] = ()  # a variant of (a): config overrides on top of the benchmark's own
    workers: int = 0  # the reference's DataLoader workers
    thread_env: ThreadEnv = "default"  # the reference's: as a public script gets it, or the project's

    @property
    def is_variant(self) -> bool:
        return self.kind == "project" and bool(self.overrides)

    @property
    def label(self) -> str:
        if self.kind == "reference":
            env = ", project's OpenMP env" if self.thread_env == "project" else ""
            return f"(c) reference, {self.workers} workers{env}"
        if self.is_variant:
            return f"(a) with {','.join(self.overrides)}"
        return "(a) project, Lightning" if self.kind == "project" else "(b) bare loop"

    @property
    def code(self) -> str:
        if self.kind == "reference":
            return f"c{self.workers}" + ("p" if self.thread_env == "project" else "")
        if self.is_variant:
            return f"a {','.join(self.overrides)}"
        return "a" if self.kind == "project" else "b"


PROJECT = TimedPath("project")
BARE_LOOP = TimedPath("bare")


def reference_path(workers: int, thread_env: ThreadEnv) -> TimedPath:
    return TimedPath("reference", workers=workers, thread_env=thread_env)


def variant_path(overrides: str) -> TimedPath:
    """The project path with `overrides` as --also gives them: KEY=VALUE[,KEY=VALUE]."""
    return TimedPath("project", overrides=tuple(overrides.split(",")))
