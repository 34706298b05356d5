"""Gradient flow, measured: the norm of the loss gradient at every layer of a net, at its checkpoints.

Teaching material says the shortcut "solves vanishing gradients"; the paper says its plain nets,
trained with BN, have backward gradients of "healthy norms", so their optimisation difficulty is
"unlikely to be caused by vanishing gradients" (section 4.1). This module measures it:

    norms = run_gradient_norms(run)   # a run's row of results.load_results(root).runs

For every checkpoint a run has (its initialisation, rebuilt from the seed exactly as training drew it;
the weight snapshots `<run_dir>/snapshots/step-<k>.pt`; its final weights), on a fixed set of training
batches (the run's own first `batches` augmented batches, the ones it trained on first), in training
mode (BN normalises with the batch's statistics, as in training), the loss (mean cross-entropy, as
training's) is differentiated and two norms are kept per batch, then averaged over the batches:

    kind "weight"  ||dL/dW|| of every conv and the FC layer, in layer order (index 1 = the first conv)
    kind "block"   ||dL/dh|| of the stem's output and every block's output h (after its ReLU)

Norms are Frobenius norms of the whole tensor (a 64-channel layer has 16x the weights of a 16-channel one;
`rms` divides by the root of the element count, for a size-free reading).

`flow_ratio` is the claim's number: the mean weight-gradient norm of a net's first `LAYERS_AT_EACH_END`
layers over that of its last ones. Vanishing gradients shrink by a factor per layer, so across a deep net
they fall by orders of magnitude (a sigmoid's slope is at most 1/4: 55 of them, 10^-33); within
`HEALTHY_FACTOR` (one order of magnitude) across the whole depth is what this project calls healthy.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .analysis import Unavailable, key_matches, load_model
from .data import DataError, TrainBatches, load_cifar10, source_key, split_cifar10
from .models import CifarNet, build_model
from .runs import RunDir, atomic_write

SNAPSHOTS = "snapshots"  # <run_dir>/snapshots/step-<k>.pt, {"step": k, "state_dict": {"model.<name>": tensor}}
SNAPSHOT_FILE = re.compile(r"step-(\d+)\.pt")
BATCHES = 4  # training batches per measurement: enough for a mean, few enough for a laptop
LAYERS_AT_EACH_END = 3  # "first layers" and "last layers" of the claim
HEALTHY_FACTOR = 10.0  # first layers' gradient within this factor of the last layers': not vanishing


def layers(model: CifarNet) -> list[nn.Module]:
    """Every layer with weights, in order: the stem conv, each block's convs (not the shortcut's
    projections, which are not layers of the depth count), the FC."""
    out = [model.conv1]
    for block in model.blocks:
        out += [m for name, m in block.named_children() if name.startswith("conv")]
    return out + [model.fc]


def block_outputs(model: CifarNet) -> list[nn.Module]:
    """The modules whose outputs are the stem's (its BN; the ReLU after it is applied in the hook) and the blocks'."""
    return [model.bn1, *model.blocks]


def gradient_norms(model: CifarNet, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> pd.DataFrame:
    """Rows (kind, index, name, norm, rms): the gradient norms of `model` averaged over `batches`, in
    training mode; the model's weights and BN statistics are left as they were."""
    model = _copy(model).train()
    weights = layers(model)
    outputs = block_outputs(model)
    names = {m: n for n, m in model.named_modules()}
    grads: dict[int, torch.Tensor] = {}

    def keep(i):
        def hook(module, inputs, output):
            if i == 0:  # the stem's output is after its ReLU
                output = F.relu(output)
            output.register_hook(lambda g: grads.__setitem__(i, g.detach()))
            return output if i == 0 else None  # the stem's: its ReLU'd output, the same values

        return hook

    handles = [m.register_forward_hook(keep(i)) for i, m in enumerate(outputs)]
    sums_w, sums_b, count = torch.zeros(len(weights), dtype=torch.float64), None, 0
    try:
        for images, labels in batches:
            model.zero_grad(set_to_none=True)
            grads.clear()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            sums_w += torch.stack([m.weight.grad.double().norm() for m in weights])
            b = torch.stack([grads[i].double().norm() for i in range(len(outputs))])
            sums_b = b if sums_b is None else sums_b + b
            count += 1
    finally:
        for handle in handles:
            handle.remove()
    if not count:
        raise Unavailable("no training batches were seen")
    sizes_b = _output_sizes(model, images)
    rows = [
        ("weight", i + 1, names[m], (sums_w[i] / count).item(), (sums_w[i] / count).item() / m.weight.numel() ** 0.5)
        for i, m in enumerate(weights)
    ]
    rows += [
        (
            "block",
            i,
            "stem" if i == 0 else names[m],
            (sums_b[i] / count).item(),
            (sums_b[i] / count).item() / sizes_b[i] ** 0.5,
        )
        for i, m in enumerate(outputs)
    ]
    return pd.DataFrame(rows, columns=["kind", "index", "name", "norm", "rms"])


def _copy(model: CifarNet) -> CifarNet:
    copy = build_model_like(model)
    copy.load_state_dict(model.state_dict())
    return copy


def build_model_like(model: CifarNet) -> CifarNet:
    return CifarNet(model.depth, model.shortcut, block=model.block)


@torch.no_grad()
def _output_sizes(model: CifarNet, images: torch.Tensor) -> list[int]:
    """Elements of the stem's and every block's output for a batch like `images`."""
    sizes = []
    handles = [m.register_forward_hook(lambda _m, _i, o: sizes.append(o.numel())) for m in block_outputs(model)]
    try:
        model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return sizes


def flow_ratio(norms: pd.DataFrame, at_each_end: int = LAYERS_AT_EACH_END) -> float:
    """Mean weight-gradient norm of the first `at_each_end` layers over the last `at_each_end` layers
    before the FC (the FC has no 3x3 kin): < 1 means the first layers get the smaller gradients."""
    w = norms[norms.kind == "weight"].sort_values("index").norm.to_numpy()[:-1]
    return float(w[:at_each_end].mean() / w[-at_each_end:].mean())


# --------------------------------------------------------------------------- a run's checkpoints


def snapshots(run_dir: str | Path) -> dict[int, Path]:
    """The run's weight snapshots, {step: path}, in step order (none: {})."""
    folder = Path(run_dir) / SNAPSHOTS
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if m := SNAPSHOT_FILE.fullmatch(path.name):
                found[int(m.group(1))] = path
    return dict(sorted(found.items()))


def initial_model(run: Mapping) -> CifarNet:
    """The net as the run's training drew it: pl.seed_everything(seed) and then the build, so torch's
    generator seeded with `seed` and nothing drawn before (train.py's order); torch's own generator is
    restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(run["seed"]))
        return build_model(run["arch"], int(run["depth"]), run["shortcut"], run.get("block"))


def checkpoints(run: Mapping) -> list[tuple[int, str, CifarNet]]:
    """(step, where from, model) for every checkpoint of the run: step 0 (a step-0 snapshot, or the
    initialisation from the seed), every snapshot, and the final weights (at the run's last step)."""
    folder = RunDir(run["path"])
    found = snapshots(folder.path)
    out = []
    if 0 not in found:
        out.append((0, "initialisation from the seed", initial_model(run)))
    args = (run["arch"], int(run["depth"]), run["shortcut"], run.get("block"))
    for step, path in found.items():
        out.append((step, str(path.relative_to(folder.path)), load_model(path, *args)))
    final = folder.final_weights()
    last = int(run["last_step"]) if "last_step" in run else int(run["steps"])
    if final is not None and last not in found:
        out.append((last, final.name, load_model(final, *args)))
    return out


def run_training_batches(
    run: Mapping, data_root: str | Path | None = None, batches: int = BATCHES, batch_size: int | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The run's first `batches` training batches (its seed's stream, augmented, as it trained on them)."""
    root = data_root if data_root is not None else run["data.root"]
    cache_dir = run.get("data.cache_dir")
    cache_dir = None if cache_dir is None or pd.isna(cache_dir) else str(cache_dir)
    try:
        split = split_cifar10(
            load_cifar10(root, cache_dir=cache_dir), int(run["data.val_size"]), int(run["data.split_seed"])
        )
    except DataError as e:
        raise Unavailable(f"{e} (or pass data_root=)") from None
    stream = TrainBatches(
        split.train_images,
        split.train_labels,
        split.mean_image,
        # a tiny data set smaller than the run's batch: one batch of all its images
        min(batch_size or int(run["batch_size"]), len(split.train_labels)),
        int(run["seed"]),
        channels_last=False,
    )
    return [batch for batch, _ in zip(stream, range(batches))]


CACHE_FILE = "gradient_norms.json"
CACHE_VERSION = 1  # raise it when the measurement changes: every cached number is then recomputed


def run_gradient_norms(
    run: Mapping, data_root: str | Path | None = None, batches: int = BATCHES, batch_size: int | None = None
) -> pd.DataFrame:
    """`gradient_norms` at every checkpoint of `run`, one frame: run, net, arch, depth, shortcut, block,
    step, source, kind, index, name, norm, rms. Every checkpoint sees the same batches.

    Kept in the run's folder (gradient_norms.json), keyed by what they are computed from (the checkpoint
    files' names, sizes and SHA-256, the seed, the batches, the data and its settings), as Figure 7's numbers are."""
    folder = RunDir(run["path"])
    root = str(data_root if data_root is not None else run["data.root"])
    files = [p for p in [*snapshots(folder.path).values(), folder.final_weights()] if p is not None]
    key = {
        "version": CACHE_VERSION,
        "checkpoints": [[str(p.relative_to(folder.path)), p.stat().st_size, _sha256(p)] for p in files],
        "net": [run["arch"], int(run["depth"]), run["shortcut"], run.get("block") or "basic"],
        "seed": int(run["seed"]),
        "batches": batches,
        "batch_size": batch_size or int(run["batch_size"]),
        "data": source_key(root),
        "data.val_size": int(run["data.val_size"]),
        "data.split_seed": int(run["data.split_seed"]),
    }
    rows = read_cache(folder.path / CACHE_FILE, key)
    if rows is None:
        data = run_training_batches(run, root, batches, batch_size)
        frames = []
        for step, source, model in checkpoints(run):
            frame = gradient_norms(model, data)
            frame.insert(0, "source", source)
            frame.insert(0, "step", step)
            frames.append(frame)
        rows = pd.concat(frames, ignore_index=True)
        try:
            atomic_write(folder.path / CACHE_FILE, json.dumps({"key": key, "rows": rows.to_dict("records")}) + "\n")
        except OSError:  # a folder we may read but not write: computed again next time
            pass
    out = rows.copy()
    for i, k in enumerate(("run", "net", "arch", "depth", "shortcut")):
        out.insert(i, k, run[k])
    out.insert(5, "block", run.get("block") or "basic")
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_cache(path: Path, key: dict) -> pd.DataFrame | None:
    """The cached rows if `path` holds them for `key`; None otherwise (absent, damaged, or another key)."""
    try:
        cached = json.loads(path.read_text())
        if key_matches(cached["key"], key):
            return pd.DataFrame(cached["rows"], columns=["step", "source", "kind", "index", "name", "norm", "rms"])
    except (OSError, ValueError, KeyError, TypeError):  # a damaged cache is recomputed and rewritten
        pass
    return None
