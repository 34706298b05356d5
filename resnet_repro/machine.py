"""The machine this process runs on, in one place: the CPU (name, family/model, SIMD flags), the cores
it may use, the GPU, the software versions and the load.

    read_cpu()             # Cpu(name='AMD EPYC 9B14', family='25', model='17', flags=(...)) from /proc/cpuinfo
    parse_cpuinfo(text)    # the same from a cpuinfo text (tests, another machine's copy)
    facts()             # the machine as a benchmark result states it

`config` decides precision from the CPU's flags, `train` names the CPU in trained_with.json, a
campaign records it, the benchmark prints all of it. Reading the CPU imports no torch (a
campaign's command line stays light); the GPU and the versions import it when asked.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# CPUs that multiply bf16 in hardware (AVX512-BF16, AMX): there bf16 convolutions run at about twice
# the fp32 speed; elsewhere PyTorch emulates bf16, slower than fp32.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Cpu:
    """The first processor of /proc/cpuinfo; None (or no flags) where cpuinfo does not say (not Linux, ARM)."""

    name: str | None  # "model name", e.g. "AMD EPYC 9B14"; a VM may name only the vendor: "AMD EPYC"
    family: str | None  # "cpu family" and "model" say which generation, e.g. 25/1 Zen 3, 25/17 Zen 4
    model: str | None
    flags: tuple[str, ...]  # in cpuinfo's order

    @property
    def simd(self) -> tuple[str, ...]:
        """The vector-unit flags (avx, avx2, avx512*, amx*): what decides the speed of a convolution."""
        return tuple(f for f in self.flags if f.startswith(("avx", "amx")))

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def native_bf16(self) -> bool:
        return any(f in self.flags for f in NATIVE_BF16_FLAGS)

    def describe(self) -> str:
        """E.g. 'AMD EPYC (family 25 model 17, AVX-512, native bf16)'; the platform's name where cpuinfo has none."""
        name = self.name or platform.processor() or platform.machine()
        if self.family is None:
            return name
        detail = f"family {self.family} model {self.model or '?'}"
        detail += ", AVX-512" if self.avx512 else ""
        detail += ", native bf16" if self.native_bf16 else ""
        return f"{name} ({detail})"


def parse_cpuinfo(text: str) -> Cpu:
    """The first processor's fields of a /proc/cpuinfo text (the others repeat them)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor" and fields:  # the second processor starts
            break
        fields.setdefault(key, value)
    flags = tuple(fields.get("flags", "").split())
    return Cpu(fields.get("model name"), fields.get("cpu family"), fields.get("model"), flags)


@functools.cache
def read_cpu(cpuinfo: Path = CPUINFO) -> Cpu:
    """This machine's CPU (read once); an empty Cpu where there is no cpuinfo."""
    try:
        return parse_cpuinfo(cpuinfo.read_text())
    except OSError:
        return parse_cpuinfo("")


def cpu_flags() -> frozenset[str]:
    """The first CPU's flags (empty where cpuinfo has none)."""
    return frozenset(read_cpu().flags)


def cpu_name() -> str | None:
    """The CPU's model name, e.g. 'AMD EPYC 9B14'; None where cpuinfo has none."""
    return read_cpu().name


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (see NATIVE_BF16_FLAGS)."""
    return read_cpu().native_bf16


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container or `taskset` may allow fewer than exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. '1.25 1.70 1.64' ('n/a' where the OS has none)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def facts() -> dict[str, str]:
    """The machine and software, as a benchmark result states them (keys in the order they are printed)."""
    import pytorch_lightning
    import torch
    import torchvision

    return {
        "cpu": read_cpu().describe(),
        "cores": str(usable_cores()),
        "torch threads": str(torch.get_num_threads()),
        "gpu": gpu_name() or "none",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "python": platform.python_version(),
    }
