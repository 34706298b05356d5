"""A reproduction of the CIFAR-10 degradation experiment of He et al. 2016 (see README.md).

Importing the package sets GOMP_SPINCOUNT=30000 unless the environment sets GOMP_SPINCOUNT or
OMP_WAIT_POLICY itself. PyTorch's CPU ops run on OpenMP (libgomp) threads, and by default a
thread that waits for the next op spins for up to 300,000 rounds before it sleeps. On a CPU
that another process also uses, spinning threads and descheduled ones then wait on each
other. Measured on the 2-core development machine, ResNet-20 steps on 2 threads:

    environment                      machine otherwise idle   one other 2-thread training job
    libgomp default (300,000)        514-601 img/s            93-146 img/s
    GOMP_SPINCOUNT=30000             517-570 img/s            159-256 img/s
    OMP_WAIT_POLICY=PASSIVE (0)      463-493 img/s            195-220 img/s

The setting changes how idle threads wait, never what is computed. OpenMP reads it once, when
PyTorch is first imported, so it cannot be a config option: set GOMP_SPINCOUNT (or
OMP_WAIT_POLICY) in the environment to choose another (README, Performance).
"""

import os

# As the user's environment had them, before this package set anything (bench.py runs its
# public-reproduction-style reference with these).
USER_THREAD_ENV = {k: os.environ.get(k) for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
if USER_THREAD_ENV["GOMP_SPINCOUNT"] is None and USER_THREAD_ENV["OMP_WAIT_POLICY"] is None:
    os.environ["GOMP_SPINCOUNT"] = "30000"
