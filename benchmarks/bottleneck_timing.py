"""What a bottleneck buys, measured: a basic block against a bottleneck block of the same input and output
width (and the basic block on 64 channels the paper compares it with), per block: parameters, multiply-adds
(counted, resnet_repro/costs.py) and the time of a training step (forward + backward) on this machine.

    python benchmarks/bottleneck_timing.py [--size 28] [--batch 16] [--repeats 7] [--threads N]

Prints a markdown table and the ratios; the claim of the seed material ("1x1 convolutions cut the
computation several-fold"; one post: 160 M against 4.4 M operations, "about 4 times") is set beside them.
The time is the median of `repeats` steps after two warm-up steps, eager fp32 on the CPU; the machine may be
shared: the load average before and after is printed with the numbers, to be read beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from resnet_repro.costs import BLOCKS, block_costs
from resnet_repro.machine import read_cpu, usable_cores

SEED_CLAIM = (160e6, 4.4e6, 4.0)  # the post's two operation counts and the ratio it gives them


def step_seconds(block: torch.nn.Module, channels: int, size: int, batch: int, repeats: int) -> float:
    """Median seconds of one forward + backward of `block` on a batch, gradients for input and weights."""
    x = torch.randn(batch, channels, size, size, requires_grad=True)
    times = []
    for i in range(repeats + 2):
        block.zero_grad(set_to_none=True)
        x.grad = None
        start = time.perf_counter()
        block(x).sum().backward()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=28, help="input height and width (56: ResNet-50's first stage)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    rows = []
    for cost, make in zip(block_costs(args.size), BLOCKS.values()):
        block = make().train()
        seconds = step_seconds(block, cost["channels"], args.size, args.batch, args.repeats)
        rows.append({**cost, "seconds": seconds})
    load_after = os.getloadavg()
    print(
        f"machine: {read_cpu().describe()}, {usable_cores()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}: a shared machine's times vary")
    print(f"input {args.size}x{args.size}, batch {args.batch}, eager fp32, median of {args.repeats} steps\n")
    print("| block | parameters | mult-adds per image | training step (forward + backward) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['block']} | {r['parameters']:,} | {r['mult_adds'] / 1e6:,.1f} M | {r['seconds'] * 1e3:,.1f} ms |")
    basic, bottleneck, basic64 = rows
    print()
    print(
        f"basic / bottleneck at 256 channels: parameters {basic['parameters'] / bottleneck['parameters']:.1f}x, "
        f"mult-adds {basic['mult_adds'] / bottleneck['mult_adds']:.1f}x, measured time {basic['seconds'] / bottleneck['seconds']:.1f}x"
    )
    print(
        f"bottleneck on 256 / basic on 64 (the paper: 'similar time complexity'): mult-adds "
        f"{bottleneck['mult_adds'] / basic64['mult_adds']:.2f}x, measured time {bottleneck['seconds'] / basic64['seconds']:.2f}x"
    )
    big, small, said = SEED_CLAIM
    print(
        f"the seed material: {big / 1e6:.0f} M against {small / 1e6:.1f} M operations is {big / small:.0f}x, "
        f"not the 'about {said:.0f} times' it says; computed here: {basic['mult_adds'] / bottleneck['mult_adds']:.1f}x"
    )


if __name__ == "__main__":
    main()
