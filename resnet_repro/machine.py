"""The machine this process runs on, in one place: the CPU (name, family/model, SIMD flags), the cores
it may use, the GPU, the software versions and the load.

    read_cpu()             # Cpu(name='AMD EPYC 9B14', family='25', model='17', flags=(...)) from /proc/cpuinfo
    parse_cpuinfo(text)    # the same from a cpuinfo text (tests, another machine's copy)
    nominal_peak(cpu, cores, "fp32")  # Peak(gflops=345.1, how='2 cores x 2.696 GHz nominal x 64 FLOP/cycle ...')
    facts()                # the machine as a benchmark result states it

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
class VectorUnits:
    """What one core computes per cycle in fp32: `fma_units` fused multiply-adds of `lanes` floats each."""

    fma_units: int
    lanes: int  # fp32 lanes of one unit: 16 for 512 bits, 8 for 256 bits
    basis: str  # which CPU kind this is, and why these numbers

    @property
    def fp32_flops_per_cycle(self) -> int:
        return self.fma_units * self.lanes * 2  # a fused multiply-add is 2 FLOPs


# By (vendor_id, cpu family, a flag it must have or None): the kinds this project meets, as vendors document them.
VECTOR_UNITS = {
    ("AuthenticAMD", "26", None): VectorUnits(2, 16, "AMD family 26, Zen 5: a full 512-bit datapath"),
    ("AuthenticAMD", "25", None): VectorUnits(
        2, 8, "AMD family 25: Zen 3, and Zen 4 whose AVX-512 runs on 256-bit units"
    ),
    ("GenuineIntel", "6", "avx512f"): VectorUnits(
        2,
        16,
        "Intel family 6 with AVX-512: Skylake-SP/Cascade Lake Xeon Gold 6xxx/Platinum "
        "(some Silver/Gold 5xxx have one unit: half this)",
    ),
}
# Where the table has no entry, the widest SIMD the flags name, with two FMA units (most x86 cores since 2013).
FALLBACK_VECTOR_UNITS = (
    (("avx512f",), VectorUnits(2, 16, "by flags: avx512f, two 512-bit units assumed")),
    (("avx2", "fma"), VectorUnits(2, 8, "by flags: avx2+fma, two 256-bit units assumed")),
    ((), VectorUnits(1, 4, "by flags: no avx2+fma, one 128-bit SSE add and one multiply assumed")),
)


@dataclass(frozen=True)
class Cpu:
    """The first processor of /proc/cpuinfo; None (or no flags) where cpuinfo does not say (not Linux, ARM)."""

    name: str | None  # "model name", e.g. "AMD EPYC 9B14"; a VM may name only the vendor: "AMD EPYC"
    family: str | None  # "cpu family" and "model" say which generation, e.g. 25/1 Zen 3, 25/17 Zen 4
    model: str | None
    flags: tuple[str, ...]  # in cpuinfo's order
    vendor: str | None = None  # "vendor_id": AuthenticAMD, GenuineIntel
    mhz: float | None = None  # "cpu MHz": in a VM the nominal (TSC) clock; a boosting CPU may run faster

    @property
    def kind(self) -> str | None:
        """Family and model in short, e.g. 'f26m2' (a result file's name); None where cpuinfo has no family."""
        return None if self.family is None else f"f{self.family}m{self.model or 'x'}"

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

    @property
    def vector_units(self) -> VectorUnits:
        """This core's fp32 FMA units and lanes: from VECTOR_UNITS by vendor and family, else from the flags."""
        for (vendor, family, flag), units in VECTOR_UNITS.items():
            if (self.vendor, self.family) == (vendor, family) and (flag is None or flag in self.flags):
                return units
        return next(units for needs, units in FALLBACK_VECTOR_UNITS if set(needs) <= set(self.flags))

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
    mhz = float(fields["cpu MHz"]) if fields.get("cpu MHz") else None
    return Cpu(
        fields.get("model name"), fields.get("cpu family"), fields.get("model"), flags, fields.get("vendor_id"), mhz
    )


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


@dataclass(frozen=True)
class Peak:
    gflops: float | None  # None where the clock is unknown or the precision is not modelled
    how: str  # how it was computed, as a result states it


def nominal_peak(cpu: Cpu, cores: int, precision: str) -> Peak:
    """The CPU's peak GFLOP/s for `precision` (fp32 | bf16): cores x nominal clock x FLOPs per cycle per core.

    FLOPs per cycle = FMA units x SIMD lanes x 2 (Cpu.vector_units). bf16 with AVX512-BF16 (vdpbf16ps: two
    bf16 products per fp32 lane) is twice the fp32 rate; without it PyTorch computes bf16 in fp32 (the fp32
    rate). AMX is not modelled. The clock is cpuinfo's: a boosting CPU may beat this figure, which is why
    the benchmark also measures a matrix multiply."""
    units = cpu.vector_units
    if precision not in ("fp32", "bf16"):
        return Peak(None, f"no CPU peak modelled for {precision}")
    per_cycle, factor = units.fp32_flops_per_cycle, ""
    if precision == "bf16":
        native = "avx512_bf16" in cpu.flags
        per_cycle *= 2 if native else 1
        factor = " x 2 for bf16 (AVX512-BF16: vdpbf16ps)" if native else " (no AVX512-BF16: bf16 at the fp32 rate)"
        factor += "; AMX not modelled" if "amx_bf16" in cpu.flags else ""
    basis = f"{units.fma_units} FMA units x {units.lanes} lanes x 2; {units.basis}"
    if cpu.mhz is None:
        return Peak(None, f"clock unknown (no cpu MHz in cpuinfo); {units.fp32_flops_per_cycle} fp32 FLOP/cycle/core")
    gflops = cores * cpu.mhz / 1000 * per_cycle
    how = f"{cores} cores x {cpu.mhz / 1000:.3f} GHz nominal x {units.fp32_flops_per_cycle} fp32 FLOP/cycle ({basis})"
    return Peak(gflops, f"{how}{factor} = {gflops:.0f} GFLOP/s {precision}")


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

    cpu = read_cpu()
    return {
        "cpu": cpu.describe(),
        "cpu SIMD flags": " ".join(cpu.simd) or "none named",
        "cpu clock": f"{cpu.mhz:.0f} MHz nominal (cpuinfo; boost may be higher)" if cpu.mhz else "unknown",
        "cores": str(usable_cores()),
        "torch threads": str(torch.get_num_threads()),
        "gpu": gpu_name() or "none",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "python": platform.python_version(),
    }
