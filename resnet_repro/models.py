"""The CIFAR network family of He et al. 2016, section 4.2: depth 6n+2.

Plain and residual nets are one class. The single controlled variable of the
whole experiment is ``shortcut``:

    "none"  plain net: the two 3x3 layers of a block are just stacked
    "A"     identity shortcut; where the shape changes, subsample with stride 2
            and zero-pad the new channels (no parameters; the paper's CIFAR choice)
    "B"     identity shortcut, but a 1x1 conv + BN projection where the shape changes

So plain-n and ResNet-n (option A) have exactly the same parameters.

`Net` is a net's identity (arch, depth, shortcut) and its names, the one place they are made.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from .paper import DEPTHS as PAPER_DEPTHS

ARCH_SHORTCUTS = {"plain": "none", "resnet": "A"}
SHORTCUTS = ("none", "A", "B")
STAGE_WIDTHS = (16, 32, 64)


def blocks_per_stage(depth: int) -> int:
    """n for a depth of 6n+2; a clear error for anything else."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"depth={depth} is not 6n+2 with n >= 1; use one of 8, 14, 20, 26, 32, ... "
            f"(the paper's: {', '.join(map(str, PAPER_DEPTHS))})"
        )
    return (depth - 2) // 6


def resolve_shortcut(arch: str, shortcut: str | None = None) -> str:
    """`arch` names a default shortcut; `shortcut` may pick option B for a resnet."""
    if arch not in ARCH_SHORTCUTS:
        raise ValueError(f"arch={arch!r} is unknown; use arch=plain or arch=resnet")
    if shortcut is None:
        return ARCH_SHORTCUTS[arch]
    shortcut = str(shortcut)
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut={shortcut!r} is unknown; use shortcut=A or shortcut=B (or leave it unset)")
    if (arch == "plain") != (shortcut == "none"):
        raise ValueError(f"arch={arch} cannot take shortcut={shortcut}; plain nets have none, resnets use A or B")
    return shortcut


def net_name(arch: str, depth, shortcut: str | None = None) -> str:
    """A net as a user types it and as its run directory is named: plain-20, resnet-56; a shortcut
    other than the arch's own is named: resnet-56-B. Also names settings that are not valid (a
    refused run's folder, e.g. resnet-21), so it checks nothing."""
    if shortcut in (None, "None", "null") or ARCH_SHORTCUTS.get(arch) == str(shortcut):
        return f"{arch}-{depth}"
    return f"{arch}-{depth}-{shortcut}"


@dataclass(frozen=True)
class Net:
    """A net's identity: arch, depth and the shortcut resolved ("none", "A" or "B"); valid by construction."""

    arch: str
    depth: int
    shortcut: str

    @classmethod
    def of(cls, arch: str, depth: int, shortcut: str | None = None) -> Net:
        """The net these settings name (`shortcut` None: the arch's own); ValueError naming the fix."""
        shortcut = resolve_shortcut(arch, shortcut)
        blocks_per_stage(depth)
        return cls(arch, depth, shortcut)

    def __post_init__(self):  # every way of making a Net checks it
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut={self.shortcut!r} is not resolved; use Net.of(arch, depth, shortcut)")
        resolve_shortcut(self.arch, self.shortcut)
        blocks_per_stage(self.depth)

    @property
    def cli_name(self) -> str:  # as a user types it (and its run directory is named): plain-56, resnet-110, resnet-56-B
        return net_name(self.arch, self.depth, self.shortcut)

    @property
    def display_name(self) -> str:  # as the paper writes it: plain-56, ResNet-110, ResNet-56 (B)
        if self.arch == "plain":
            return f"plain-{self.depth}"
        return f"ResNet-{self.depth}" + ("" if self.shortcut == "A" else f" ({self.shortcut})")

    @property
    def parameters(self) -> int:
        return _parameters(self)

    def build(self) -> CifarNet:
        return CifarNet(self.depth, self.shortcut)


@cache
def _parameters(net: Net) -> int:
    return count_parameters(net.build())


class ZeroPadShortcut(nn.Module):
    """Option A where the shape changes: take every other pixel, pad channels with zeros."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        # Pad the channel dimension (dims are given last-first: W, H, C).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; with a shortcut, ReLU comes after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.has_shortcut = shortcut != "none"
        self.shortcut: nn.Module = nn.Identity()
        if self.has_shortcut and (stride != 1 or in_channels != out_channels):
            if shortcut == "A":
                self.shortcut = ZeroPadShortcut(out_channels - in_channels)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.has_shortcut:  # the only difference between a plain net and a ResNet
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarNet(nn.Module):
    """conv3x3(16) -> 3 stages of n blocks (16, 32, 64 filters) -> global avg pool -> FC(10)."""

    def __init__(self, depth: int, shortcut: str = "A", num_classes: int = 10):
        super().__init__()
        n = blocks_per_stage(depth)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut={shortcut!r} is unknown; use one of {SHORTCUTS}")
        self.depth, self.shortcut = depth, shortcut
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        blocks, in_channels = [], STAGE_WIDTHS[0]
        for stage, width in enumerate(STAGE_WIDTHS):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_channels, width, stride, shortcut))
                in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, num_classes)
        for m in self.modules():  # He et al. 2015 ("MSRA") init, as the common reproductions do
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)

    def response_layers(self) -> list[nn.BatchNorm2d]:
        """The BN after every 3x3 conv, in layer order: Figure 7 reads their outputs
        (after BN, before the ReLU or the addition)."""
        layers = [self.bn1]
        for block in self.blocks:
            layers += [block.bn1, block.bn2]
        return layers


def build_model(arch: str, depth: int, shortcut: str | None = None) -> CifarNet:
    return Net.of(arch, depth, shortcut).build()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
