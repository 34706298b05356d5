"""Where the time of a bare-loop step (b) goes: torch.profiler over a few steps, each op's self CPU
time (its own, without the ops it calls: nothing is counted twice) summed by part of the step.

    profile_steps(bare_loop, warmup=5, steps=10)  # StepProfile(ms_per_step=..., parts={"conv backward": ...})

An op belongs to the part of its outermost enclosing op that is a REGION (everything the data
stream, the loss or the optimizer runs is theirs), else to the part of the nearest op, itself or
an enclosing one, whose name PARTS matches: the `aten::empty` inside a convolution is the
convolution's. Inductor's compiled graph ("Call CompiledFxGraph") keeps only its own time, its fused
batch norm, ReLU and additions: the convolutions it calls are convolutions. What no op claims (the
step's Python between ops, ops PARTS does not name) is "everything else".

On a GPU the CPU times say when kernels were queued, not what they cost: the profile is CPU-only.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from torch.profiler import ProfilerActivity, profile, record_function

from .harness import DATA, BareLoop
from .reference import sync

STEP = "bench::step"  # each profiled step; its own time is the Python between ops

# Op name (a regular expression, searched) -> part; the first that matches wins. Order matters:
# convolution_backward before convolution.
PARTS = {
    re.escape(DATA): "data",
    r"cross_entropy|log_softmax|nll_loss|LogSoftmaxBackward|NllLossBackward": "loss",
    r"^Optimizer\.": "optimizer",  # Optimizer.step#SGD.step, Optimizer.zero_grad#SGD.zero_grad
    r"convolution_backward|ConvolutionBackward": "conv backward",
    r"conv2d|convolution": "conv forward",  # aten::conv2d ... aten::mkldnn_convolution, mkldnn::_convolution_pointwise
    r"batch_norm|BatchNorm": "batch norm",  # native_batch_norm and its backward
    r"Call CompiledFxGraph": "compiled kernels",  # Inductor's fused BN + ReLU + add (own time only)
    r"^aten::(relu|clamp_min|threshold_backward|add|add_|sub|sub_|mul|mul_|div|div_|pad|constant_pad_nd|"
    r"copy_|_to_copy|to|fill_|zero_|flip|where|index|masked_fill_)$|ReluBackward|AddBackward": "other pointwise",
}
REGIONS = ("data", "loss", "optimizer")  # parts that own every op run inside them
OWN_TIME_ONLY = ("compiled kernels",)  # parts that do not claim the ops they call
ELSE = "everything else"
# The parts as a result lists them: the step's order, then what is left.
ORDER = ("data", "conv forward", "conv backward", "batch norm", "other pointwise", "compiled kernels", "loss")
ORDER += ("optimizer", ELSE)


def named_part(name: str) -> str | None:
    return next((part for pattern, part in PARTS.items() if re.search(pattern, name)), None)


def part_of(chain: list[str]) -> str:
    """The part of an op, given the names from the outermost enclosing op down to the op itself."""
    parts = [named_part(name) for name in chain]
    region = next((p for p in parts if p in REGIONS), None)
    if region:
        return region
    for depth, part in enumerate(reversed(parts)):  # the op itself first, then outwards
        if part and (depth == 0 or part not in OWN_TIME_ONLY):
            return part
    return ELSE


@dataclass
class StepProfile:
    steps: int
    batch_size: int
    ms_per_step: float  # wall time of the profiled steps (the profiler's overhead included)
    parts: dict[str, float]  # ms per step, in ORDER

    def share(self, part: str) -> float:
        return self.parts[part] / self.ms_per_step

    @property
    def attributed(self) -> float:
        """The parts' sum over the wall time: ~1 when nothing is counted twice or missed."""
        return sum(self.parts.values()) / self.ms_per_step


def chain_of(event) -> list[str]:
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return names[::-1]


def split_by_part(events, steps: int) -> dict[str, float]:
    """ms per step of each part: the self CPU time of the events, summed by part_of."""
    totals = dict.fromkeys(ORDER, 0.0)
    for event in events:
        totals[part_of(chain_of(event))] += event.self_cpu_time_total / 1000 / steps
    return totals


def profile_steps(loop: BareLoop, warmup: int, steps: int) -> StepProfile:
    """`steps` steps of the bare loop (after `warmup` unprofiled ones) under torch.profiler, split by part."""
    step = loop.start()
    for _ in range(warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        for _ in range(steps):
            with record_function(STEP):
                step()
        sync(loop.device)
        wall = time.perf_counter() - start
    return StepProfile(steps, loop.spec.batch_size, wall * 1000 / steps, split_by_part(profiler.events(), steps))
