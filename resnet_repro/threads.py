"""How PyTorch's idle CPU threads wait: set by the entry points (run.py, `python -m resnet_repro`,
the `resnet-repro` command, `python -m benchmarks.throughput`) before they import torch. Importing the
package changes nothing.

A run sets GOMP_SPINCOUNT=30000 unless the environment sets GOMP_SPINCOUNT or OMP_WAIT_POLICY
itself. PyTorch's CPU ops run on OpenMP (libgomp) threads, and by default a thread that waits for
the next op spins for up to 300,000 rounds before it sleeps. On a CPU that another process also
uses, spinning threads and descheduled ones then wait on each other. Measured on the 2-core
development machine, ResNet-20 steps on 2 threads:

    environment                      machine otherwise idle   one other 2-thread training job
    libgomp default (300,000)        514-601 img/s            93-146 img/s
    GOMP_SPINCOUNT=30000             517-570 img/s            159-256 img/s
    OMP_WAIT_POLICY=PASSIVE (0)      463-493 img/s            195-220 img/s

The setting changes how idle threads wait, never what is computed. OpenMP reads it once, when
PyTorch is first imported, so it cannot be a config option, and code that imports torch before it
calls `train()` (a notebook, the tests) runs with the environment as it found it. Set
GOMP_SPINCOUNT (or OMP_WAIT_POLICY) in the environment to choose another (docs/performance.md).
"""

from __future__ import annotations

import os

THREAD_ENV_KEYS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
PROJECT_THREAD_ENV = {"GOMP_SPINCOUNT": "30000"}
# As the user's environment had them when this module was first imported, before any entry point
# set anything (bench.py runs its public-reproduction-style reference with these).
USER_THREAD_ENV = {k: os.environ.get(k) for k in THREAD_ENV_KEYS}


def project_thread_env(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with the project's OpenMP wait setting, unless the user's environment chose one."""
    environ = dict(environ)
    if all(value is None for value in USER_THREAD_ENV.values()):
        environ.update(PROJECT_THREAD_ENV)
    return environ


def user_thread_env(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with the OpenMP wait settings as the user's environment had them."""
    environ = {k: v for k, v in environ.items() if k not in THREAD_ENV_KEYS}
    return {**environ, **{k: v for k, v in USER_THREAD_ENV.items() if v is not None}}


def use_project_thread_env() -> None:
    """Set the project's OpenMP wait setting in this process: call it before torch is imported."""
    os.environ.update(project_thread_env(dict(os.environ)))
