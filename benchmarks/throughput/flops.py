"""The work of a training step, counted: FLOPs per image of a network's forward pass and of its
training step (forward + backward), by torch.utils.flop_counter.FlopCounterMode.

    count_flops(20)  # NetFlops(depth=20, forward=81.1e6, training=242.4e6)

FlopCounterMode counts the matrix products (convolutions, their backward, the linear layer) as 2 FLOPs
per multiply-add; batch norm, ReLU, the additions of the shortcuts, the loss and the optimizer are
not counted (their element-wise work is about 1-2% more, by an estimate). ResNet-20's forward pass is ~41 M
multiply-adds and ResNet-56's ~126 M: the figures quoted for these nets. The backward pass is about
twice the forward (a gradient for the input and one for the weights), minus the first convolution's
input gradient, which nothing needs. Plain and residual nets count alike: the shortcut adds no product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from resnet_repro.models import build_model


@dataclass(frozen=True)
class NetFlops:
    depth: int
    forward: float  # FLOPs per image of the forward pass
    training: float  # FLOPs per image of a training step: forward + backward

    def describe(self) -> str:
        """E.g. 'ResNet-20: 81.1 MFLOP forward, 242 MFLOP per training image'."""
        forward, training = self.forward / 1e6, self.training / 1e6
        return f"ResNet-{self.depth}: {forward:.1f} MFLOP forward, {training:.0f} MFLOP per training image"


def count_flops(depth: int, arch: str = "resnet", batch: int = 2) -> NetFlops:
    """FLOPs per image of `arch`-`depth`, counted over one forward and backward of a batch of `batch` (fp32, CPU)."""
    model = build_model(arch, depth).train()
    images, labels = torch.randn(batch, 3, 32, 32), torch.arange(batch) % 10
    with FlopCounterMode(display=False) as forward:
        loss = F.cross_entropy(model(images), labels)
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    fwd, bwd = forward.get_total_flops() / batch, backward.get_total_flops() / batch
    return NetFlops(depth, fwd, fwd + bwd)
