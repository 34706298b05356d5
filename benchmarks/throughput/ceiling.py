"""How fast this machine can compute at all, for the precision a path trains in: the nominal peak
(machine.nominal_peak: cores x clock x FLOPs per cycle) and a measured practical ceiling, the faster
of two large products at the run's thread count, best of a few:

    matmul       n x n by n x n (2 n^3 FLOPs), through torch's BLAS (MKL on x86)
    convolution  a 3x3 convolution of 64 channels on a batch of 128 32x32 maps, channels_last, forward
                 (oneDNN): the nets' widest layer, the kind of op their time goes to

Two, because one library can be far from the hardware where the other is not: on AMD CPUs MKL's fp32
matmul ran at a fraction of oneDNN's convolutions. The nominal clock may understate a CPU that
boosts, so a measured ceiling can beat the "peak". Both are printed next to what the training achieves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from resnet_repro import machine

from .reference import sync

# The precision a path trains in, as a Lightning precision names it -> the arithmetic it runs.
ARITHMETIC = {"32-true": "fp32", "bf16-mixed": "bf16", "16-mixed": "fp16"}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MATMUL_N, MATMUL_REPEATS = 2048, 5  # 17 GFLOP a product: 0.05-0.3 s on 2 cores
CONV_BATCH, CONV_CHANNELS, CONV_SIZE = 128, 64, 32  # 9.7 GFLOP a convolution


@dataclass(frozen=True)
class Ceiling:
    precision: str  # fp32 | bf16 | fp16
    nominal: machine.Peak  # the CPU's (None on a GPU: not modelled)
    matmul: float  # GFLOP/s, measured
    conv: float  # GFLOP/s, measured
    threads: int  # torch's threads during the measurement

    @property
    def measured(self) -> float:
        """The ceiling the fractions divide by: the faster of the two products."""
        return max(self.matmul, self.conv)

    @property
    def how(self) -> str:
        """The measured ceiling, as a result states it."""
        matmul = f"torch.mm {MATMUL_N}x{MATMUL_N}: {self.matmul:.0f}"
        conv = f"3x3 conv {CONV_CHANNELS}->{CONV_CHANNELS} ch, {CONV_BATCH}x{CONV_SIZE}x{CONV_SIZE}: {self.conv:.0f}"
        return (
            f"{self.measured:.0f} GFLOP/s, the faster of {matmul} and {conv} GFLOP/s "
            f"({self.precision}, best of {MATMUL_REPEATS}, {self.threads} threads)"
        )


def fastest(op, device: torch.device, repeats: int = MATMUL_REPEATS) -> float:
    """Seconds of the fastest of `repeats` calls of `op` (after one untimed call: it warms the allocator
    and the library's kernels)."""
    best = float("inf")
    for i in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        op()
        sync(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(dtype: torch.dtype, device: torch.device, n: int = MATMUL_N) -> float:
    """GFLOP/s of an n x n matrix product."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    return 2 * n**3 / fastest(lambda: torch.mm(a, b), device) / 1e9


@torch.no_grad()
def conv_gflops(dtype: torch.dtype, device: torch.device) -> float:
    """GFLOP/s of a 3x3 convolution, CONV_CHANNELS in and out, on CONV_BATCH maps of CONV_SIZE^2, channels_last."""
    n, c, s = CONV_BATCH, CONV_CHANNELS, CONV_SIZE
    x = torch.randn(n, c, s, s, device=device).to(dtype=dtype, memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(device=device, dtype=dtype)
    conv = conv.to(memory_format=torch.channels_last)
    return 2 * n * s * s * c * c * 9 / fastest(lambda: conv(x), device) / 1e9


def measure_ceiling(precision: str, device: torch.device, threads: int | None = None) -> Ceiling:
    """The nominal peak (on a CPU) and the measured GFLOP/s of `precision` at `threads` (None: torch's)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        dtype, used = DTYPES[precision], torch.get_num_threads()
        matmul, conv = matmul_gflops(dtype, device), conv_gflops(dtype, device)
    finally:
        torch.set_num_threads(before)
    if device.type == "cpu":
        nominal = machine.nominal_peak(machine.read_cpu(), machine.usable_cores(), precision)
    else:
        nominal = machine.Peak(None, f"not modelled on {device.type}")
    return Ceiling(precision, nominal, matmul, conv, used)
