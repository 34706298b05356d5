"""Freed CPU memory kept for the next training step, instead of handed back to the OS and faulted in again.

A step allocates and frees the same large activation buffers every iteration (8 MB each in the
16-channel stage at batch 128). glibc's malloc serves blocks above its mmap threshold with a fresh
mmap and unmaps them when they are freed, and trims the top of its heap above the trim threshold,
so the next step's buffers start as pages the kernel must fault in and zero, 4 KB at a time.
Measured on the 2-core Zen 5 machine (fp32, ResNet-56, compiled, bare step): 134,000 page faults
per step with glibc's defaults, about 100 with both thresholds raised; the campaign's compiled
ResNet-20 spent 11% of its CPU time in the kernel.

keep_freed_memory() raises both thresholds for this process (mallopt): blocks up to 32 MB come from
the heap, and the heap no longer shrinks, so the process keeps its peak heap, which it reaches
every step anyway. It changes where memory comes from, never what is computed. It is
process-wide and lasts as long as the process. Only glibc has mallopt (Linux); elsewhere it does
nothing and returns False. trainer.keep_freed_memory says when a run uses it (trainer_settings.py).
"""

from __future__ import annotations

import ctypes

# mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# 32 MB is glibc's own ceiling for its adaptive mmap threshold on 64-bit, accepted by every version;
# it covers the largest activation of these nets at batch 256 (16 MB), the evaluation batch.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Keep freed blocks up to MMAP_THRESHOLD in this process's heap; True if the C library took it."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc: macOS, Windows, musl
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
