"""The networks of He et al. 2016: the CIFAR family (section 4.2) and the ImageNet family (Table 1).

Plain and residual nets are one class. The single controlled variable of the
whole experiment is ``shortcut``:

    "none"  plain net: the layers of a block are just stacked
    "A"     identity shortcut; where the shape changes, subsample with the block's stride
            and zero-pad the new channels (no parameters; the paper's CIFAR choice)
    "B"     identity shortcut, but a 1x1 conv + BN projection where the shape changes

So plain-n and ResNet-n (option A) have exactly the same parameters.

A block is "basic" (two 3x3 layers, the paper's CIFAR nets and ResNet-18/34) or "bottleneck"
(1x1 reduce, 3x3, 1x1 expand to 4x the width: ResNet-50/101/152). The CIFAR family takes either:
depth 6n+2 with basic blocks, 9n+2 with bottlenecks (e.g. 164, as He et al.'s follow-up paper
builds it). The ImageNet family (`imagenet_net`) is built for counting and teaching, not trained here.

`Net` is a CIFAR net's identity (arch, depth, shortcut, block) and its names, the one place they are made.
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
BLOCKS = ("basic", "bottleneck")
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}
STAGE_WIDTHS = (16, 32, 64)  # CIFAR: the 3x3 layers' widths (a bottleneck's output is 4x)
EXPANSION = 4  # a bottleneck block's output width / its 3x3 layer's width


def resolve_block(block: str | None = None) -> str:
    """`block` as a Net holds it (unset: basic, the paper's CIFAR block); ValueError naming the fix."""
    if block in (None, "None", "null"):
        return "basic"
    if block not in BLOCKS:
        raise ValueError(f"block={block!r} is unknown; use block=basic or block=bottleneck")
    return block


def blocks_per_stage(depth: int, block: str = "basic") -> int:
    """n for a depth of 6n+2 (basic blocks) or 9n+2 (bottlenecks); a clear error for anything else."""
    per_stage = 3 * LAYERS_PER_BLOCK[resolve_block(block)]
    if not isinstance(depth, int) or depth < per_stage + 2 or (depth - 2) % per_stage:
        if per_stage == 6:
            raise ValueError(
                f"depth={depth} is not 6n+2 with n >= 1; use one of 8, 14, 20, 26, 32, ... "
                f"(the paper's: {', '.join(map(str, PAPER_DEPTHS))})"
            )
        raise ValueError(
            f"depth={depth} is not 9n+2 with n >= 1, as bottleneck nets need; use one of 11, 20, 29, 56, 110, 164, ..."
        )
    return (depth - 2) // per_stage


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


def net_name(arch: str, depth, shortcut: str | None = None, block: str | None = None) -> str:
    """A net as a user types it and as its run directory is named: plain-20, resnet-56; a shortcut
    other than the arch's own is named: resnet-56-B; a bottleneck net says so: resnet-164-bottleneck.
    Also names settings that are not valid (a refused run's folder, e.g. resnet-21), so it checks nothing."""
    name = f"{arch}-{depth}"
    if shortcut not in (None, "None", "null") and ARCH_SHORTCUTS.get(arch) != str(shortcut):
        name += f"-{shortcut}"
    if block not in (None, "None", "null", "basic"):
        name += f"-{block}"
    return name


@dataclass(frozen=True)
class Net:
    """A CIFAR net's identity: arch, depth, the shortcut resolved ("none", "A" or "B") and the block
    ("basic" or "bottleneck"); valid by construction."""

    arch: str
    depth: int
    shortcut: str
    block: str = "basic"

    @classmethod
    def of(cls, arch: str, depth: int, shortcut: str | None = None, block: str | None = None) -> Net:
        """The net these settings name (`shortcut` None: the arch's own); ValueError naming the fix."""
        shortcut, block = resolve_shortcut(arch, shortcut), resolve_block(block)
        blocks_per_stage(depth, block)
        return cls(arch, depth, shortcut, block)

    def __post_init__(self):  # every way of making a Net checks it
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut={self.shortcut!r} is not resolved; use Net.of(arch, depth, shortcut)")
        if self.block not in BLOCKS:
            raise ValueError(f"block={self.block!r} is not resolved; use Net.of(arch, depth, shortcut, block)")
        resolve_shortcut(self.arch, self.shortcut)
        blocks_per_stage(self.depth, self.block)

    @property
    def cli_name(self) -> str:  # as a user types it (and its run directory is named): plain-56, resnet-56-B,
        # resnet-164-bottleneck
        return net_name(self.arch, self.depth, self.shortcut, self.block)

    @property
    def display_name(self) -> str:  # as the paper writes it: plain-56, ResNet-110, ResNet-56 (B)
        notes = [n for n in (self.shortcut if self.shortcut not in ("none", "A") else None, self.block) if n]
        notes = [n for n in notes if n != "basic"]
        base = f"plain-{self.depth}" if self.arch == "plain" else f"ResNet-{self.depth}"
        return base + (f" ({', '.join(notes)})" if notes else "")

    @property
    def parameters(self) -> int:
        return _parameters(self)

    def build(self) -> CifarNet:
        return CifarNet(self.depth, self.shortcut, block=self.block)


@cache
def _parameters(net: Net) -> int:
    return count_parameters(net.build())


class ZeroPadShortcut(nn.Module):
    """Option A where the shape changes: take every `stride`-th pixel, pad channels with zeros."""

    def __init__(self, extra_channels: int, stride: int = 2):
        super().__init__()
        self.extra_channels, self.stride = extra_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # Pad the channel dimension (dims are given last-first: W, H, C).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def make_shortcut(in_channels: int, out_channels: int, stride: int, shortcut: str) -> nn.Module:
    """What a block adds to its residual: the identity, or where the shape changes, option A or B."""
    if shortcut == "none" or (stride == 1 and in_channels == out_channels):
        return nn.Identity()
    if shortcut == "A":
        return ZeroPadShortcut(out_channels - in_channels, stride)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class Block(nn.Module):
    """What every block shares: relu(F(x) + shortcut(x)) with a shortcut, relu(F(x)) without; that is the whole
    difference between a plain net and a ResNet. A block makes its layers and `residual` (F), then `add_shortcut`."""

    def add_shortcut(self, in_channels: int, out_channels: int, stride: int, shortcut: str) -> None:
        # Last in __init__: option B's parameters come after the layers', the order checkpoints' optimizer state has.
        self.has_shortcut = shortcut != "none"
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)
        if self.has_shortcut:  # the only difference between a plain net and a ResNet
            out = out + self.shortcut(x)
        return F.relu(out)


class BasicBlock(Block):
    """Two 3x3 conv-BN layers; with a shortcut, ReLU comes after the sum."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.add_shortcut(in_channels, width, stride, shortcut)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): the block's layers, before the addition."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def response_layers(self) -> list[nn.BatchNorm2d]:
        return [self.bn1, self.bn2]


class Bottleneck(Block):
    """1x1 conv to `width` (with the block's stride, as the paper's ResNet-50/101/152 have it), 3x3 conv,
    1x1 conv to 4 x `width`, each followed by BN; ReLU between them and after the sum."""

    expansion = EXPANSION

    def __init__(self, in_channels: int, width: int, stride: int, shortcut: str):
        super().__init__()
        out_channels = EXPANSION * width
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.add_shortcut(in_channels, out_channels, stride, shortcut)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): the block's layers, before the addition."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def response_layers(self) -> list[nn.BatchNorm2d]:
        return [self.bn1, self.bn2, self.bn3]


BLOCK_CLASSES = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_stages(in_channels: int, widths, blocks: list[int], block: str, shortcut: str, first_stride: int):
    """The stages of blocks: the first block of every stage but the first has stride 2."""
    kind, layers = BLOCK_CLASSES[block], []
    for stage, (width, n) in enumerate(zip(widths, blocks)):
        for i in range(n):
            stride = (2 if stage > 0 else first_stride) if i == 0 else 1
            layers.append(kind(in_channels, width, stride, shortcut))
            in_channels = width * kind.expansion
    return nn.Sequential(*layers), in_channels


def he_init(model: nn.Module) -> None:
    """He et al. 2015 ("MSRA") init on conv and linear weights, as the common reproductions do."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)


class CifarNet(nn.Module):
    """conv3x3(16) -> 3 stages of n blocks (16, 32, 64 filters; x4 out of a bottleneck) -> global avg pool -> FC(10)."""

    def __init__(self, depth: int, shortcut: str = "A", num_classes: int = 10, block: str = "basic"):
        super().__init__()
        n = blocks_per_stage(depth, block)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut={shortcut!r} is unknown; use one of {SHORTCUTS}")
        self.depth, self.shortcut, self.block = depth, shortcut, block
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        self.blocks, out_channels = make_stages(STAGE_WIDTHS[0], STAGE_WIDTHS, [n] * 3, block, shortcut, 1)
        self.fc = nn.Linear(out_channels, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)

    def response_layers(self) -> list[nn.BatchNorm2d]:
        """The BN after every conv of the stem and of the blocks' residual branches, in layer order
        (every 3x3 layer, for basic blocks): Figure 7 reads their outputs (after BN, before the ReLU or
        the addition)."""
        layers = [self.bn1]
        for block in self.blocks:
            layers += block.response_layers()
        return layers


def build_model(arch: str, depth: int, shortcut: str | None = None, block: str | None = None) -> CifarNet:
    return Net.of(arch, depth, shortcut, block).build()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- the ImageNet family (Table 1)

# depth -> (block, blocks per stage); stages of 64, 128, 256, 512 filters (x4 out of a bottleneck)
IMAGENET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# What the paper builds: plain-18/34 (Table 2), ResNet-18/34 with A (Figure 4) or B (Table 3),
# ResNet-50/101/152 with B ("we use option B for increasing dimensions").
IMAGENET_SHORTCUTS = {18: ("none", "A", "B"), 34: ("none", "A", "B"), 50: ("B",), 101: ("B",), 152: ("B",)}


class ImageNetNet(nn.Module):
    """conv7x7(64)/2 -> maxpool3x3/2 -> 4 stages (64, 128, 256, 512; x4 out of a bottleneck) -> avg pool -> FC(1000)."""

    def __init__(self, depth: int, shortcut: str = "B", num_classes: int = 1000):
        super().__init__()
        block, blocks = IMAGENET_LAYOUTS[depth]
        self.depth, self.shortcut, self.block = depth, shortcut, block
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.blocks, out_channels = make_stages(64, IMAGENET_WIDTHS, list(blocks), block, shortcut, 1)
        self.fc = nn.Linear(out_channels, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.blocks(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def imagenet_net(arch: str, depth: int, shortcut: str | None = None) -> ImageNetNet:
    """One of the paper's ImageNet nets: imagenet_net("resnet", 50), imagenet_net("plain", 34),
    imagenet_net("resnet", 34, "A"). A resnet's shortcut defaults to B (the paper's for 50/101/152,
    and torchvision's: its parameter counts are these nets'); ValueError naming the fix."""
    if depth not in IMAGENET_LAYOUTS:
        raise ValueError(f"depth={depth} is not one of the paper's ImageNet nets; use one of 18, 34, 50, 101, 152")
    if arch not in ARCH_SHORTCUTS:
        raise ValueError(f"arch={arch!r} is unknown; use arch=plain or arch=resnet")
    shortcut = resolve_shortcut(arch, "B" if arch == "resnet" and shortcut is None else shortcut)
    if shortcut not in IMAGENET_SHORTCUTS[depth]:
        allowed = " or ".join(
            {"none": "plain", "A": "resnet with shortcut A", "B": "resnet with shortcut B"}[s]
            for s in IMAGENET_SHORTCUTS[depth]
        )
        raise ValueError(
            f"the paper builds no {net_name(arch, depth, shortcut)} for ImageNet; depth {depth} is {allowed}"
        )
    return ImageNetNet(depth, shortcut)
