"""Weights by name: any committed run's net, and the public pretrained CIFAR ResNets imported into this project's nets.

    from resnet_repro import load_net
    net = load_net("paper/resnet-20")          # results/paper/runs/resnet-20/seed0/weights.pt, as a CifarNet
    net = load_net("paper/plain-56/seed1")     # another seed
    net = load_net("akamaster/resnet-56")      # akamaster/pytorch_resnet_cifar10's pretrained ResNet-56

    python -m resnet_repro.pretrained evaluate --depth 20 56 --data-root ../shared/data/cifar10-jpeg.tar.xz

akamaster's nets (github.com/akamaster/pytorch_resnet_cifar10, BSD-2) are the paper's CIFAR ResNets
with option A shortcuts, as ours, but their shortcut pads the new zero channels on both sides of the
identity channels (`F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`) where ours pads
them after (models.ZeroPadShortcut). The nets are the same up to an order of the channels: importing
permutes each stage's residual channels (every conv, BN and the final FC that reads or writes them) so
that the identity channels come first, and the imported CifarNet's logits equal the original's.

Their input is normalized differently: per channel with ImageNet's mean and std (AKAMASTER_MEAN/STD),
where this project subtracts the training set's mean image; `evaluate` feeds each net its own.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

import torch

from .models import STAGE_WIDTHS, CifarNet, Net, blocks_per_stage

AKAMASTER = "akamaster"
AKAMASTER_HOME = "https://github.com/akamaster/pytorch_resnet_cifar10/tree/master/pretrained_models"
AKAMASTER_DEPTHS = (20, 32, 44, 56, 110, 1202)  # the files upstream; 20-56 are checked here
AKAMASTER_MEAN, AKAMASTER_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # akamaster's trainer.py
# Where akamaster's .th files are looked for, first found wins: $RESNET_REPRO_REFERENCE_WEIGHTS, then a
# checkout's ../shared/reference-weights (this project's machines).
WEIGHTS_ENV = "RESNET_REPRO_REFERENCE_WEIGHTS"
CHECKOUT = Path(__file__).resolve().parent.parent


class WeightsError(ValueError):
    """Weights cannot be found or do not fit; the message says which and how to fix it."""


# --------------------------------------------------------------------------- akamaster's layout


def stage_orders(depth: int) -> list[torch.Tensor]:
    """For each stage, akamaster's index of each of our residual channels (ours[k] = theirs[order[k]]).

    Ours pads a stage's new channels after the identity channels, theirs on both sides: our identity
    channel k (k < the previous width) is their channel pad + previous_order[k]; our new channels are
    their remaining ones, in order."""
    blocks_per_stage(depth)  # a clear error for a depth that is not 6n+2
    orders = [torch.arange(STAGE_WIDTHS[0])]
    for width in STAGE_WIDTHS[1:]:
        previous = orders[-1]
        pad = width // 4
        identity = pad + previous
        rest = torch.tensor([c for c in range(width) if not pad <= c < pad + len(previous)])
        orders.append(torch.cat([identity, rest]))
    return orders


def from_akamaster(state_dict: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """akamaster's state dict (keys with or without DataParallel's `module.`) as a CifarNet(depth, "A")'s."""
    theirs = {k.removeprefix("module."): v for k, v in state_dict.items()}
    n = blocks_per_stage(depth)
    orders = stage_orders(depth)
    ours: dict[str, torch.Tensor] = {}
    read: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in theirs:
            raise WeightsError(f"akamaster weights of a ResNet-{depth} lack {key}; is the file a ResNet-{depth}'s?")
        read.add(key)
        return theirs[key]

    def bn(src: str, dst: str, order: torch.Tensor | None) -> None:
        for part in ("weight", "bias", "running_mean", "running_var"):
            value = take(f"{src}.{part}")
            ours[f"{dst}.{part}"] = value if order is None else value[order]

    def conv(src: str, dst: str, out_order: torch.Tensor | None, in_order: torch.Tensor | None) -> None:
        weight = take(f"{src}.weight")
        weight = weight if out_order is None else weight[out_order]
        ours[f"{dst}.weight"] = weight if in_order is None else weight[:, in_order]

    conv("conv1", "conv1", orders[0], None)
    bn("bn1", "bn1", orders[0])
    block = 0
    for stage, order in enumerate(orders):
        for i in range(n):
            src, dst = f"layer{stage + 1}.{i}", f"blocks.{block}"
            in_order = orders[stage - 1] if stage > 0 and i == 0 else order
            # a block's inner channels (conv1 -> bn1 -> conv2) are its own: kept in their order
            conv(f"{src}.conv1", f"{dst}.conv1", None, in_order)
            bn(f"{src}.bn1", f"{dst}.bn1", None)
            conv(f"{src}.conv2", f"{dst}.conv2", order, None)
            bn(f"{src}.bn2", f"{dst}.bn2", order)
            block += 1
    ours["fc.weight"] = take("linear.weight")[:, orders[-1]]
    ours["fc.bias"] = take("linear.bias")
    unread = sorted(k for k in theirs if k not in read and not k.endswith("num_batches_tracked"))
    if unread:
        raise WeightsError(f"akamaster weights hold {len(unread)} keys no ResNet-{depth} has, e.g. {unread[0]}")
    return ours


def akamaster_depth(state_dict: dict[str, torch.Tensor]) -> int:
    """The depth 6n+2 of an akamaster state dict, from its number of blocks per stage."""
    blocks = {k.split(".")[2] for k in state_dict if k.removeprefix("module.").startswith("layer1.")}
    return 6 * len(blocks) + 2


def load_akamaster(path: str | os.PathLike, depth: int | None = None) -> CifarNet:
    """akamaster's pretrained ResNet in `path` (a .th file) as this project's CifarNet(depth, shortcut A), in
    eval mode. Its logits equal the original net's, on inputs normalized its way (akamaster_inputs)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (any unreadable file: one line naming it)
        raise WeightsError(
            f"cannot read {path} ({type(e).__name__}: {e}); download it again from {AKAMASTER_HOME}"
        ) from None
    state = state.get("state_dict", state)
    found = akamaster_depth(state)
    if depth is not None and depth != found:
        raise WeightsError(f"{path} holds a ResNet-{found}, not a ResNet-{depth}")
    net = CifarNet(found, "A")
    weights = from_akamaster(state, found)
    # BN's num_batches_tracked counts nothing at inference: ours keep their own
    net.load_state_dict({**net.state_dict(), **weights}, strict=True)
    return net.eval()


def akamaster_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW images as akamaster's nets were trained to see them: [0, 1], per channel (x - mean) / std."""
    mean = torch.tensor(AKAMASTER_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(AKAMASTER_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def reference_weights_dir(folder: str | os.PathLike | None = None) -> Path:
    """Where akamaster's .th files are: `folder`, else $RESNET_REPRO_REFERENCE_WEIGHTS, else ../shared/reference-weights."""
    candidates = (
        [folder]
        if folder is not None
        else [os.environ.get(WEIGHTS_ENV), CHECKOUT.parent / "shared" / "reference-weights"]
    )
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    where = folder if folder is not None else f"${WEIGHTS_ENV}"
    raise WeightsError(
        f"no folder of akamaster's weights at {where}: download resnet<depth>-<hash>.th from {AKAMASTER_HOME} "
        f"into a folder and set {WEIGHTS_ENV}=<folder> (or pass --weights <folder>)"
    )


def akamaster_file(depth: int, folder: str | os.PathLike | None = None) -> Path:
    folder = reference_weights_dir(folder)
    found = sorted(folder.glob(f"resnet{depth}-*.th"))
    if not found:
        raise WeightsError(f"no resnet{depth}-*.th in {folder}; download it from {AKAMASTER_HOME}")
    return found[0]


# --------------------------------------------------------------------------- weights by name


def results_dir() -> Path:
    """The results/ of the current folder if it has one, else this checkout's."""
    here = Path("results")
    return here if here.is_dir() else CHECKOUT / "results"


NAME = re.compile(r"(?P<source>[\w.-]+)/(?P<net>[\w-]+?)(?:/seed(?P<seed>\d+))?")


def load_net(name: str, results: str | os.PathLike | None = None) -> CifarNet:
    """The net `name` names, with its final weights, in eval mode, in one call:

    "<results folder>/<net>[/seed<k>]"  a committed run: results/<folder>/runs/<net>/seed<k>/weights.pt
                                        (seed 0 unless given), e.g. "paper/resnet-20", "paper/plain-56/seed1"
    "akamaster/resnet-<depth>"          akamaster's pretrained ResNet (reference_weights_dir), imported

    WeightsError, naming what is there, for a name that names nothing."""
    from .analysis import Unavailable, load_model
    from .results import read_config
    from .runs import RunDir

    match = NAME.fullmatch(name)
    if match is None:
        raise WeightsError(
            f"{name!r} is not a net's name; use e.g. 'paper/resnet-20', 'paper/plain-56/seed1' or 'akamaster/resnet-20'"
        )
    source, net_name, seed = match["source"], match["net"], int(match["seed"] or 0)
    if source == AKAMASTER:
        depth = re.fullmatch(r"resnet-(\d+)", net_name)
        if depth is None:
            raise WeightsError(
                f"akamaster publishes ResNets only: use akamaster/resnet-<depth>, depth one of {AKAMASTER_DEPTHS}"
            )
        return load_akamaster(akamaster_file(int(depth[1])), int(depth[1]))
    root = Path(results) if results is not None else results_dir()
    runs = root / source / "runs"
    folder = runs / net_name / f"seed{seed}"
    if not folder.is_dir():
        there = sorted(f"{source}/{p.parent.name}/{p.name}" for p in runs.glob("*/seed*") if p.is_dir())
        listed = ", ".join(there) if there else f"none in {runs}"
        raise WeightsError(f"no run {name} ({folder} does not exist); committed runs: {listed}")
    run = RunDir(folder)
    weights = run.final_weights()
    if weights is None:
        raise WeightsError(
            f"{folder} holds no weights.pt (nor last.ckpt): the run did not finish, or was collected without them"
        )
    cfg = read_config(run)
    net = Net.of(str(cfg.arch), int(cfg.depth), None if cfg.shortcut is None else str(cfg.shortcut))
    try:
        return load_model(weights, net.arch, net.depth, net.shortcut).eval()
    except Unavailable as e:
        raise WeightsError(str(e)) from None


# --------------------------------------------------------------------------- evaluate: test error, Figure 7


def error_and_response_stds(net: CifarNet, batches) -> tuple[float, list[float]]:
    """Test error and Figure 7's numbers (analysis.response_stds) in one pass over the images."""
    from .analysis import response_stds

    wrong, seen, labels_of_batch = [], [], []

    def labelled():
        for images, labels in batches:
            labels_of_batch.append(labels)
            yield images, labels

    def count(module, inputs, logits):
        labels = labels_of_batch[-1]
        wrong.append((logits.argmax(1) != labels).sum().item())
        seen.append(len(labels))

    handle = net.register_forward_hook(count)
    try:
        stds = response_stds(net, labelled())
    finally:
        handle.remove()
    return sum(wrong) / sum(seen), stds


class AkamasterBatches:
    """A split's test images normalized akamaster's way, in fixed order."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500):
        self.images, self.labels, self.batch_size = images, labels, batch_size

    def __iter__(self):
        for start in range(0, len(self.labels), self.batch_size):
            end = start + self.batch_size
            yield akamaster_inputs(self.images[start:end]), self.labels[start:end]


PRETRAINED_CSV = "pretrained.csv"  # one row per imported net and data copy: its test error
FIGURE7_CSV = "figure7.csv"  # the imported nets' Figure 7 numbers, in the columns of results/<name>/figure7.csv
PRETRAINED_COLUMNS = ("net", "weights", "data", "images", "test_error", "machine")
FIGURE7_COLUMNS = ("net", "arch", "depth", "shortcut", "run", "seed", "layer", "std")


def _merge_rows(path: Path, rows: list[dict], columns: tuple, key: tuple) -> None:
    """Write `rows` into the csv at `path`, replacing the rows of the same key; other rows are kept."""
    old = []
    if path.is_file():
        with open(path, newline="") as f:
            old = list(csv.DictReader(f))
    new_keys = {tuple(str(r[k]) for k in key) for r in rows}
    kept = [r for r in old if tuple(r[k] for k in key) not in new_keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(kept + rows)
    os.replace(tmp, path)


def evaluate(
    depths: list[int], data_root: str, out: Path, weights: str | None, max_images: int | None, say=print
) -> int:
    from .data import DataError, load_cifar10
    from .machine import read_cpu

    try:
        files = {depth: akamaster_file(depth, weights) for depth in depths}
        data = load_cifar10(data_root, cache_dir=os.environ.get("RESNET_REPRO_CACHE", "~/.cache/resnet_repro"))
    except (WeightsError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    images, labels = data.test_images, data.test_labels
    if max_images is not None and max_images < len(labels):  # a fixed random subset, as Figure 7's --max-images
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:max_images].sort().values
        images, labels = images[keep], labels[keep]
    cpu = read_cpu()
    machine = f"{cpu.name or 'unknown CPU'} family {cpu.family} model {cpu.model}"
    rows, stats = [], []
    for depth, path in files.items():
        net = load_akamaster(path, depth)
        name = f"{AKAMASTER}/resnet-{depth}"
        batches = AkamasterBatches(images, labels)
        error, stds = error_and_response_stds(net, batches)
        say(f"{name} ({path.name}) on {data.source}: test error {100 * error:.2f}% ({len(labels)} test images)")
        rows.append(
            dict(
                net=name,
                weights=path.name,
                data=data.source,
                images=len(labels),
                test_error=f"{error:.6f}",
                machine=machine,
            )
        )
        stats += [
            dict(net=name, arch="resnet", depth=depth, shortcut="A", run=name, seed=0, layer=i, std=s)
            for i, s in enumerate(stds, start=1)
        ]
    _merge_rows(out / PRETRAINED_CSV, rows, PRETRAINED_COLUMNS, ("net", "data", "images"))
    _merge_rows(out / FIGURE7_CSV, stats, FIGURE7_COLUMNS, ("run", "layer"))
    say(f"wrote {out / PRETRAINED_CSV} (test errors) and {out / FIGURE7_CSV} (Figure 7's numbers)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_repro.pretrained",
        description="akamaster's pretrained CIFAR ResNets imported into this project's nets: their test error and "
        "Figure 7's numbers on a data copy, beside the trained runs'.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("evaluate", help="test error and Figure 7's layer responses of imported nets")
    ev.add_argument("--depth", type=int, nargs="+", default=[20], help="ResNet depths to import (default: 20)")
    ev.add_argument("--data-root", default=os.environ.get("CIFAR10_ROOT"), help="CIFAR-10 (any layout run.py reads)")
    ev.add_argument("--weights", default=None, help=f"folder of akamaster's .th files (default: ${WEIGHTS_ENV})")
    ev.add_argument(
        "--out", type=Path, default=Path("results/pretrained"), help="where pretrained.csv and figure7.csv go"
    )
    ev.add_argument("--max-images", type=int, default=None, help="a fixed random subset of the test images")
    args = parser.parse_args(argv)
    if args.data_root is None:
        parser.error("--data-root is required (or set CIFAR10_ROOT)")
    return evaluate(args.depth, args.data_root, args.out, args.weights, args.max_images)


if __name__ == "__main__":
    sys.exit(main())
