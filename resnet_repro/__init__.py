"""A reproduction of the CIFAR-10 degradation experiment of He et al. 2016 (see README.md).

Importing the package sets OMP_WAIT_POLICY=PASSIVE, unless the environment already sets it.
PyTorch's CPU ops run on OpenMP threads; by default an idle thread spins while it waits for
the next op, and on a CPU that other processes also use (a shared 2-core machine, a sweep of
several runs) the spinning threads and the descheduled ones wait on each other: measured on the
2-core development machine with other jobs running, a ResNet-20 step on 2 threads ran at
~40-110 images/s with the default policy and ~150-450 with PASSIVE (1 thread: ~170-330).
The policy does not change what is computed, only how idle threads wait. OpenMP reads it once,
when PyTorch is first imported, so it cannot be a config option: set OMP_WAIT_POLICY=ACTIVE in
the environment to get OpenMP's default back (README, Performance).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
