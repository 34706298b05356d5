"""What a net or a block costs, counted: parameters and multiply-adds (the paper's "FLOPs").

    mult_adds(imagenet_net("resnet", 50))   # 3.86e9, the paper's Table 1 writes 3.8 (4 of its 5 digits match)
    print(table1_markdown())                # the paper's Table 1 (its cost rows), from the builders
    block_costs()                           # a basic block against a bottleneck of the same width

Multiply-adds are counted by torch.utils.flop_counter.FlopCounterMode on one forward pass, which
counts the convolutions and the FC as 2 FLOPs per multiply-add (halved here) and nothing else
(batch norm, ReLU, pooling and the shortcuts' additions are not products; the paper counts products too).
That is torchvision's convention: on torchvision's nets it gives the counts their weights carry (tested).
Measured time is not here: benchmarks/bottleneck_timing.py times the blocks on the machine at hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from .models import IMAGENET_LAYOUTS, LAYERS_PER_BLOCK, BasicBlock, Bottleneck, Net, count_parameters, imagenet_net

# The paper's Table 1, bottom row: multiply-adds of a 224x224 forward pass, x 10^9.
TABLE1_MULT_ADDS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
PAPERS = "paper's mult-adds"


def mult_adds(model: nn.Module, size: int = 224, channels: int = 3) -> float:
    """Multiply-adds of one forward pass of one `channels` x `size` x `size` input, in eval mode."""
    # On the meta device: the count needs only shapes, and skipping the arithmetic makes it ~100x faster.
    meta = {name: torch.empty_like(t, device="meta") for name, t in [*model.named_parameters(), *model.named_buffers()]}
    was_training = model.training
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        functional_call(model.eval(), meta, (torch.empty(1, channels, size, size, device="meta"),))
    model.train(was_training)
    return counter.get_total_flops() / 2


def saved_for_backward(net: Net, batch: int) -> int:
    """Bytes one fp32 training step of `net` keeps for its backward pass at `batch` images: the
    activations autograd saves (bf16-mixed keeps less). Counted on the meta device (shapes only) at one
    and two blocks per stage and extrapolated: every block of a stage saves the same, so the count is
    linear in the blocks per stage (equal to a direct count, tested). ResNet-1202 at batch 128: 11.0 GiB."""
    per_stage = 3 * LAYERS_PER_BLOCK[net.block]
    one, two = (_saved_bytes(Net(net.arch, per_stage * n + 2, net.shortcut, net.block), batch) for n in (1, 2))
    return one + (two - one) * ((net.depth - 2) // per_stage - 1)


def _saved_bytes(net: Net, batch: int) -> int:
    model = net.build().train()
    params = dict(model.named_parameters())
    meta = {
        n: torch.empty_like(t, device="meta", requires_grad=n in params)
        for n, t in [*params.items(), *model.named_buffers()]
    }
    storages: dict[int, int] = {}  # one tensor saved by two ops (a ReLU's output, the next conv's input) counts once

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = functional_call(model, meta, (torch.empty(batch, 3, 32, 32, device="meta"),))
        F.cross_entropy(logits, torch.zeros(batch, dtype=torch.long, device="meta"))
    return sum(storages.values())


def table1_rows() -> list[dict]:
    """Per ImageNet depth: block, blocks per stage, parameters (option B, and A where the paper builds it),
    multiply-adds (option B; A), the paper's multiply-adds."""
    rows = []
    for depth, (block, blocks) in IMAGENET_LAYOUTS.items():
        b = imagenet_net("resnet", depth, "B")
        row = {
            "net": f"ResNet-{depth}",
            "block": block,
            "blocks per stage": "x".join(map(str, blocks)),
            "parameters (B)": count_parameters(b),
            "mult-adds (B)": mult_adds(b),
            PAPERS: TABLE1_MULT_ADDS[depth] * 1e9,
        }
        if depth in (18, 34):  # option A (= the plain net's count: zero-padding adds no product)
            a = imagenet_net("resnet", depth, "A")
            row["parameters (A, = plain)"], row["mult-adds (A, = plain)"] = count_parameters(a), mult_adds(a)
        rows.append(row)
    return rows


def table1_markdown() -> str:
    """Table 1's cost rows as a markdown table, our count beside the paper's."""
    lines = [
        "| net | block | blocks per stage | parameters (B) | mult-adds (B) | parameters (A = plain) | mult-adds (A = plain) | paper |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table1_rows():
        a_params = f"{r['parameters (A, = plain)']:,}" if "parameters (A, = plain)" in r else "—"
        a_macs = f"{r['mult-adds (A, = plain)'] / 1e9:.3f} x 10^9" if "mult-adds (A, = plain)" in r else "—"
        lines.append(
            f"| {r['net']} | {r['block']} | {r['blocks per stage']} | {r['parameters (B)']:,} | "
            f"{r['mult-adds (B)'] / 1e9:.3f} x 10^9 | {a_params} | {a_macs} | {r[PAPERS] / 1e9:.1f} x 10^9 |"
        )
    return "\n".join(lines) + "\n"


# The blocks compared: the paper's (section 4.1, "Deeper Bottleneck Architectures") bottleneck on 256 channels,
# a basic block of the same input and output width, and the basic block on 64 channels the paper compares it with.
BLOCKS = {
    "basic, 256 -> 256 (two 3x3, 256)": lambda: BasicBlock(256, 256, 1, "A"),
    "bottleneck, 256 -> 256 (1x1 64, 3x3 64, 1x1 256)": lambda: Bottleneck(256, 64, 1, "A"),
    "basic, 64 -> 64 (two 3x3, 64; the paper's comparison)": lambda: BasicBlock(64, 64, 1, "A"),
}


def block_costs(size: int = 56) -> list[dict]:
    """Per block of BLOCKS: input channels, parameters, multiply-adds on a `size` x `size` input (56: ResNet's
    first stage on ImageNet)."""
    rows = []
    for name, make in BLOCKS.items():
        block = make()
        channels = block.conv1.in_channels
        rows.append(
            {
                "block": name,
                "channels": channels,
                "parameters": count_parameters(block),
                "mult_adds": mult_adds(block, size, channels),
            }
        )
    return rows


if __name__ == "__main__":
    print(table1_markdown())
