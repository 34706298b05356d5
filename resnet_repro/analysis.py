"""Figure 7's statistic: the standard deviation of every 3x3 layer's response on the test images.

A response is the output of the BN that follows a 3x3 conv, before the ReLU or
the shortcut's addition (`CifarNet.response_layers()`), in eval mode (BN's
running statistics), over every test image, channel and pixel of that layer:
one number per layer, in layer order. Each batch contributes its mean and
variance, combined exactly at the end, so the test set never has to sit in
memory as activations.

Takes a run as `results` read it (its net, where its data is) and loads its final
weights (last.ckpt, or a collected run's weights.pt). No training code is imported.

A forward pass over the test set costs minutes per run on a CPU, so the numbers are kept in the
run's folder, `figure7_stats.json`, keyed by what they are computed from: the weights file's
name, size and SHA-256 (a hash, not a date: a collected run's weights.pt keeps it through a git
clone), the net, and the data settings (the data's name and SHA-256, `data.source_key`, wherever it lies;
val_size, split_seed, images). A report of a finished sweep reads them back in milliseconds; any change of
key recomputes them.
The same forward pass also gives the net's prediction for every test image, kept beside them in
`test_predictions.json` (same key): the claims table pairs two nets' errors image by image with them
(`run_test_predictions`), so the test-set sampling noise of a difference needs no second pass.
Where the data is not at hand, numbers cached from data of the same file name are read back (a report of
committed runs on a machine without the data); they cannot be computed again there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import torch

from .data import DataError, EvalBatches, load_cifar10, same_source, source_key, split_cifar10
from .models import CifarNet, build_model, net_name
from .runs import RunDir, atomic_write

CACHE_FILE = "figure7_stats.json"
PREDICTIONS_FILE = "test_predictions.json"  # {"key": ..., "predicted": [class per test image], "labels": [...]}
CACHE_VERSION = 1  # raise it when the statistic's computation changes: every cached number is then recomputed


class Unavailable(RuntimeError):
    """The statistic cannot be computed for this run; the message says why and how to fix it."""


@torch.inference_mode()
def response_stds(model: CifarNet, batches, predictions: dict | None = None) -> list[float]:
    """Std of each response layer's output over all images, channels and pixels (population std).
    `predictions`, if given, receives "predicted" and "labels": the class the net gives every image, and its label."""
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
    predicted, labels = [], []
    try:
        for images, targets in batches:
            predicted.append(model(images).argmax(1).cpu())
            labels.append(targets.cpu())
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
    if predictions is not None:
        predictions.update(predicted=torch.cat(predicted).tolist(), labels=torch.cat(labels).tolist())
    return stds


def load_model(
    checkpoint: str | os.PathLike, arch: str, depth: int, shortcut: str | None, block: str | None = None
) -> CifarNet:
    """The CifarNet inside a Lightning checkpoint of `resnet_repro.module.Classifier`, or a weights.pt
    of a collected run (both: {"state_dict": {"model.<name>": tensor}})."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: say which, and carry on with the other runs
        raise Unavailable(f"cannot read checkpoint {checkpoint} ({type(e).__name__}: {e}); retrain this run") from e
    weights = {k.removeprefix("model."): v for k, v in state.get("state_dict", {}).items() if k.startswith("model.")}
    model = build_model(arch, depth, shortcut, block)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise Unavailable(
            f"checkpoint {checkpoint} does not hold a {net_name(arch, depth, shortcut, block)} "
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
    announce: Callable[[], object] | None = None,
) -> list[float]:
    """Figure 7's numbers for one finished run, from its final weights and its own data settings;
    from its figure7_stats.json when that was computed from the same weights and data settings.
    `announce` is called before a forward pass (not for cached numbers): say what is taking the time.

    `run`: its row of `results.load_results(root).runs` (path, arch, depth, shortcut, data.root,
    data.cache_dir, data.val_size, data.split_seed). `data_root` overrides the run's data.root
    (the data may have moved since training).
    """
    return _evaluated(run, data_root, device, max_images, batch_size, announce)["stds"]


def run_test_predictions(
    run: Mapping,
    data_root: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 500,
    announce: Callable[[], object] | None = None,
) -> tuple[list[int], list[int]]:
    """(predicted class, label) of every test image, in the test set's order, by the run's final weights
    (eval mode, as the run's own test evaluation); cached in its test_predictions.json as Figure 7's numbers."""
    found = _evaluated(run, data_root, device, None, batch_size, announce)
    return found["predicted"], found["labels"]


def _evaluated(run, data_root, device, max_images, batch_size, announce) -> dict:
    """Both caches of a run, each read back if its key matches; one forward pass computes whatever is missing."""
    folder = RunDir(run["path"])
    weights = folder.final_weights()
    if weights is None:
        raise Unavailable(f"no checkpoint {folder.checkpoint} (nor weights.pt); restore it, or retrain this run")
    root = str(data_root if data_root is not None else run["data.root"])
    try:
        key = cache_key(run, weights, root, max_images)
    except OSError as e:
        raise Unavailable(f"cannot read {weights} ({e}); restore it, or retrain this run") from None
    stds = read_cache(folder.path / CACHE_FILE, key)
    predictions = read_predictions(folder.path / PREDICTIONS_FILE, key) if max_images is None else None
    if stds is not None and (predictions is not None or max_images is not None):
        return {"stds": stds, **(predictions or {})}
    if announce is not None:
        announce()
    stds, predicted, labels = compute_responses(run, weights, Path(root).expanduser(), device, max_images, batch_size)
    writes = [(CACHE_FILE, {"key": key, "stds": stds})]
    if max_images is None:  # predictions are kept for the whole test set only
        writes.append((PREDICTIONS_FILE, {"key": key, "predicted": predicted, "labels": labels}))
    for name, content in writes:
        try:
            atomic_write(folder.path / name, json.dumps(content, indent=None if "labels" in content else 1) + "\n")
        except OSError:  # a folder we may read but not write (someone else's runs): computed again next time
            pass
    return {"stds": stds, "predicted": predicted, "labels": labels}


def cache_key(run: Mapping, weights: Path, data_root: str, max_images: int | None) -> dict:
    """Everything Figure 7's numbers of a run depend on."""
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "version": CACHE_VERSION,
        "weights": weights.name,
        "weights_bytes": weights.stat().st_size,
        "weights_sha256": digest.hexdigest(),
        # a bottleneck net's key names its block; a basic net's key is as it was before blocks existed
        "net": [run["arch"], int(run["depth"]), run["shortcut"]]
        + [b for b in [run.get("block")] if b not in (None, "basic")],
        "data": source_key(data_root),
        "data.val_size": int(run["data.val_size"]),
        "data.split_seed": int(run["data.split_seed"]),
        "images": max_images or "all",
    }


def key_matches(cached: object, key: dict) -> bool:
    """Whether a cache written under the key `cached` holds for `key`: every entry equal, the data the same source."""
    return (
        isinstance(cached, dict)
        and cached.keys() == key.keys()
        and all(cached[k] == v for k, v in key.items() if k != "data")
        and same_source(cached["data"], key["data"])
    )


def read_cache(path: Path, key: dict) -> list[float] | None:
    """The cached numbers if `path` holds them for `key`; None otherwise (absent, damaged, or another key)."""
    try:
        cached = json.loads(path.read_text())
        if key_matches(cached["key"], key) and all(isinstance(s, float) for s in cached["stds"]):
            return cached["stds"]
    except (OSError, ValueError, KeyError, TypeError):  # a damaged cache is recomputed and rewritten
        pass
    return None


def read_predictions(path: Path, key: dict) -> dict | None:
    """{"predicted": [...], "labels": [...]} if `path` holds them for `key`; None otherwise."""
    try:
        cached = json.loads(path.read_text())
        if key_matches(cached["key"], key) and len(cached["predicted"]) == len(cached["labels"]) > 0:
            return {"predicted": [int(p) for p in cached["predicted"]], "labels": [int(x) for x in cached["labels"]]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def compute_response_stds(
    run: Mapping, weights: Path, root: Path, device: str, max_images: int | None, batch_size: int
) -> list[float]:
    return compute_responses(run, weights, root, device, max_images, batch_size)[0]


def compute_responses(
    run: Mapping, weights: Path, root: Path, device: str, max_images: int | None, batch_size: int
) -> tuple[list[float], list[int], list[int]]:
    """The forward pass over the run's test images (a fixed random `max_images` of them, if given)."""
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
    model = load_model(weights, run["arch"], int(run["depth"]), run["shortcut"], run.get("block")).to(device)
    batches = EvalBatches(images, labels, mean_image, batch_size, device=device, channels_last=False)
    predictions: dict = {}
    stds = response_stds(model, batches, predictions)
    return stds, predictions["predicted"], predictions["labels"]
