"""F(x) + x in numbers: how large each block's residual F(x) is against what it is added to.

The paper's argument for identity shortcuts (section 3.1, and Figure 7's reading in section 4.2): if the
best function of a block is close to the identity, the solver finds it easier to push the residual F
towards zero than to fit an identity with a stack of layers; "the residual functions might be generally
closer to zero than the non-residual functions". Figure 7 shows it through the layers' response stds;
this measures it directly, per block, on test images in eval mode (BN's running statistics):

    ratio = ||F(x)|| / ||s(x)||   per image, averaged over the images

F(x) is the block's branch before the addition (`block.residual`), s(x) the shortcut's output (x itself,
or where the shape changes option A's subsampled, zero-padded x or option B's projection): the two terms
of the sum. A plain net has no sum; its "ratio" is its block's output before the ReLU against its input,
shown for contrast (a plain block must carry the whole signal itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import torch

from .analysis import Unavailable, _test_set, load_model
from .data import DataError, EvalBatches
from .models import CifarNet, ZeroPadShortcut
from .runs import RunDir

IMAGES = 1000  # test images per measurement: a fixed random choice, enough for a mean per block


@torch.inference_mode()
def residual_ratios(model: CifarNet, batches) -> list[float]:
    """Per block, in order: the mean over images of ||F(x)|| / ||s(x)|| (s = the shortcut; for a plain
    block, x subsampled and zero-padded like option A's where the shape changes, so the sizes compare)."""
    sums = torch.zeros(len(model.blocks), dtype=torch.float64)
    count = 0
    inputs: list[torch.Tensor] = []
    handles = [b.register_forward_pre_hook(lambda _m, args: inputs.append(args[0])) for b in model.blocks]
    was_training = model.training
    model.eval()
    try:
        for images, _ in batches:
            inputs.clear()
            model(images)
            for i, (block, x) in enumerate(zip(model.blocks, inputs)):
                residual = block.residual(x).flatten(1).norm(dim=1)
                if block.has_shortcut:
                    carried = block.shortcut(x)
                else:  # what option A would carry, to measure the plain block's output against its input
                    stride = block.conv1.stride[0]
                    extra = block.residual(x).shape[1] - x.shape[1]
                    carried = ZeroPadShortcut(extra, stride)(x) if stride != 1 or extra else x
                sums[i] += (residual / carried.flatten(1).norm(dim=1)).double().sum()
            count += len(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if not count:
        raise Unavailable("no test images were seen")
    return (sums / count).tolist()


def run_residual_ratios(
    run: Mapping,
    data_root: str | os.PathLike | None = None,
    images: int = IMAGES,
    batch_size: int = 250,
    announce: Callable[[], object] | None = None,
) -> pd.DataFrame:
    """`residual_ratios` of a run's final weights, on a fixed random `images` of its test set: rows
    run, net, arch, depth, shortcut, block, index (1 = the first block), ratio."""
    folder = RunDir(run["path"])
    weights = folder.final_weights()
    if weights is None:
        raise Unavailable(f"no checkpoint {folder.checkpoint} (nor weights.pt); restore it, or retrain this run")
    root = Path(str(data_root if data_root is not None else run["data.root"])).expanduser()
    cache_dir = run.get("data.cache_dir")
    cache_dir = None if cache_dir is None or pd.isna(cache_dir) else str(cache_dir)
    try:
        x, y, mean_image, _ = _test_set(str(root), cache_dir, int(run["data.val_size"]), int(run["data.split_seed"]))
    except DataError as e:
        raise Unavailable(f"{e} (or pass data_root=)") from None
    if images < len(y):  # a fixed random subset: the test set may be sorted by class
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:images].sort().values
        x, y = x[keep], y[keep]
    if announce is not None:
        announce()
    model = load_model(weights, run["arch"], int(run["depth"]), run["shortcut"], run.get("block"))
    ratios = residual_ratios(model, EvalBatches(x, y, mean_image, batch_size, channels_last=False))
    return pd.DataFrame(
        {
            "run": run["run"],
            "net": run["net"],
            "arch": run["arch"],
            "depth": int(run["depth"]),
            "shortcut": run["shortcut"],
            "block": run.get("block") or "basic",
            "index": range(1, len(ratios) + 1),
            "ratio": ratios,
        }
    )
