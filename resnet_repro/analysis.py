"""Figure 7's statistic: the standard deviation of every 3x3 layer's response on the test images.

A response is the output of the BN that follows a 3x3 conv, before the ReLU or
the shortcut's addition (`CifarNet.response_layers()`), in eval mode (BN's
running statistics), over every test image, channel and pixel of that layer:
one number per layer, in layer order. Each batch contributes its mean and
variance, combined exactly at the end, so the test set never has to sit in
memory as activations.

Takes a run as `results` read it (its net, where its data is) and loads its final
weights (last.ckpt, or a collected run's weights.pt). No training code is imported.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch

from .data import DataError, EvalBatches, load_cifar10, split_cifar10
from .models import CifarNet, build_model
from .runs import RunDir


class Unavailable(RuntimeError):
    """The statistic cannot be computed for this run; the message says why and how to fix it."""


@torch.inference_mode()
def response_stds(model: CifarNet, batches) -> list[float]:
    """Std of each response layer's output over all images, channels and pixels (population std)."""
    layers = model.response_layers()
    # Per layer and batch: element count, variance and mean (one cheap reduction; no sync until the end).
    counts: list[list[int]] = [[] for _ in layers]
    moments: list[list[torch.Tensor]] = [[] for _ in layers]

    def record(i):
        def hook(module, inputs, output):
            counts[i].append(output.numel())
            moments[i].append(torch.stack(torch.var_mean(output.float(), correction=0)))

        return hook

    handles = [layer.register_forward_hook(record(i)) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        for images, _ in batches:
            model(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if not counts[0]:
        raise Unavailable("no test images were seen")
    stds = []
    for n, per_batch in zip(counts, moments):
        n = torch.tensor(n, dtype=torch.float64)
        variance, mean = torch.stack(per_batch).double().cpu().unbind(1)
        overall = (n * mean).sum() / n.sum()
        # law of total variance: within-batch variance plus the spread of the batch means; no cancellation
        stds.append(((n * (variance + (mean - overall) ** 2)).sum() / n.sum()).sqrt().item())
    return stds


def load_model(checkpoint: str | os.PathLike, arch: str, depth: int, shortcut: str | None) -> CifarNet:
    """The CifarNet inside a Lightning checkpoint of `resnet_repro.module.Classifier`, or a weights.pt
    of a collected run (both: {"state_dict": {"model.<name>": tensor}})."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: say which, and carry on with the other runs
        raise Unavailable(f"cannot read checkpoint {checkpoint} ({type(e).__name__}: {e}); retrain this run") from e
    weights = {k.removeprefix("model."): v for k, v in state.get("state_dict", {}).items() if k.startswith("model.")}
    model = build_model(arch, depth, shortcut)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise Unavailable(
            f"checkpoint {checkpoint} does not hold a {arch}-{depth} "
            f"({len(missing)} weights missing, {len(unexpected)} unexpected); is it this run's?"
        )
    return model


@functools.lru_cache(maxsize=2)
def _test_set(root: str, cache_dir: str | None, val_size: int, split_seed: int):
    """Test images and the training mean image the run subtracted; loaded once for all runs that share them."""
    split = split_cifar10(load_cifar10(root, cache_dir=cache_dir), val_size, split_seed)
    return split.test_images, split.test_labels, split.mean_image, split.source


def run_response_stds(
    run: Mapping,
    data_root: str | os.PathLike | None = None,
    device: str = "cpu",
    max_images: int | None = None,
    batch_size: int = 500,
) -> list[float]:
    """Figure 7's numbers for one finished run, from its final weights and its own data settings.

    `run`: its row of `results.load_results(root).runs` (path, arch, depth, shortcut, data.root,
    data.cache_dir, data.val_size, data.split_seed). `data_root` overrides the run's data.root
    (the data may have moved since training).
    """
    weights = RunDir(run["path"]).final_weights()
    if weights is None:
        raise Unavailable(f"no checkpoint {RunDir(run['path']).checkpoint} (nor weights.pt)")
    root = Path(str(data_root if data_root is not None else run["data.root"])).expanduser()
    cache_dir = run["data.cache_dir"]
    cache_dir = None if cache_dir is None or pd.isna(cache_dir) else str(cache_dir)
    try:
        images, labels, mean_image, _ = _test_set(
            str(root), cache_dir, int(run["data.val_size"]), int(run["data.split_seed"])
        )
    except DataError as e:
        raise Unavailable(f"{e} (or pass --data-root)") from None
    if max_images is not None and max_images < len(labels):
        # a fixed random subset: the test set may be sorted by class, so its first images are not a sample
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:max_images].sort().values
        images, labels = images[keep], labels[keep]
    model = load_model(weights, run["arch"], int(run["depth"]), run["shortcut"]).to(device)
    batches = EvalBatches(images, labels, mean_image, batch_size, device=device, channels_last=False)
    return response_stds(model, batches)
