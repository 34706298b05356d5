"""Which test images carry Figure 7's std of a run, and why: BN's running statistics or the weights.

    python benchmarks/figure7_outliers.py results/tenth/runs/resnet-56/seed0 [--compare results/tenth/runs/plain-56/seed0]
        [--data-root /work/shared/data/cifar10-jpeg.tar.xz] [--out results/tenth/figure7_outliers.md]

For every test image and every 3x3 layer's response (after BN, before the ReLU or the addition, in eval mode as
Figure 7 reads it) it takes the image's energy, the mean of the squared response over channels and pixels. The
images whose energy is far above the layer's median are listed (index in the test set, class, file, the layers where
it is far above, the first of them). Then, for those images, the same forward pass in training mode, BN normalising
with the statistics of a batch (the outliers among 500 ordinary test images) instead of its running statistics: if
the outliers still stand out, the weights make them; if they fall back, the running statistics do. Also: Figure 7's
std with the top 1% of images (by their largest energy) left out, layer by layer against the comparison run, and the
same count on 5,000 training images (are such images only in the test set?). Prints the markdown note and writes it.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_repro.analysis import load_model  # noqa: E402
from resnet_repro.data import CLASSES, IMAGE_SUFFIXES, EvalBatches, load_cifar10, split_cifar10  # noqa: E402
from resnet_repro.results import load_results  # noqa: E402

FAR = 100.0  # an image's energy in a layer this many times the layer's median: far above it


@torch.inference_mode()
def per_image(model, images, labels, mean_image, train_mode: bool = False, batch_size: int = 500):
    """Per image and layer: mean and mean square of the response (over channels and pixels); and predictions."""
    layers = model.response_layers()
    sums: list[list[torch.Tensor]] = [[] for _ in layers]
    squares: list[list[torch.Tensor]] = [[] for _ in layers]

    def record(i):
        def hook(module, inputs, output):
            x = output.double().flatten(1)
            sums[i].append(x.mean(1))
            squares[i].append((x * x).mean(1))

        return hook

    handles = [layer.register_forward_hook(record(i)) for i, layer in enumerate(layers)]
    model.train(train_mode)
    predicted = []
    try:
        for batch, _ in EvalBatches(images, labels, mean_image, batch_size, channels_last=False):
            predicted.append(model(batch).argmax(1))
    finally:
        for h in handles:
            h.remove()
        model.eval()
    mean = torch.stack([torch.cat(s) for s in sums], 1).numpy()  # [images, layers]
    square = torch.stack([torch.cat(s) for s in squares], 1).numpy()
    return mean, square, torch.cat(predicted).numpy()


def layer_std(mean: np.ndarray, square: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Figure 7's std per layer from per-image moments (every image has the same number of elements per layer)."""
    if keep is not None:
        mean, square = mean[keep], square[keep]
    overall = mean.mean(0)
    return np.sqrt(square.mean(0) - overall**2)


def test_file_names(root: Path) -> list[str] | None:
    """The test images' file names in the order load_cifar10 stacks them (by class, then file name)."""
    if not (root.is_file() and tarfile.is_tarfile(root)):
        return None
    names: dict[str, list[str]] = {}
    with tarfile.open(root) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if (
                member.isfile()
                and len(parts) >= 3
                and parts[-3] == "test"
                and parts[-1].lower().endswith(IMAGE_SUFFIXES)
            ):
                names.setdefault(parts[-2], []).append(parts[-1])
    return [f"test/{c}/{n}" for c in CLASSES for n in sorted(names.get(c, []))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--compare", type=Path, help="a run whose Figure 7 std is compared layer by layer")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--top", type=int, default=15, help="outlier images listed")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    def row_of(path: Path):
        runs = load_results(path.parent.parent).runs
        return runs[runs.path.map(lambda p: Path(p).resolve()) == path.resolve()].iloc[0]

    run = row_of(args.run)
    root = args.data_root or Path(run["data.root"])
    split = split_cifar10(load_cifar10(root, cache_dir=run["data.cache_dir"]), int(run["data.val_size"]),
                          int(run["data.split_seed"]))  # fmt: skip
    images, labels, mean_image = split.test_images, split.test_labels, split.mean_image
    model = load_model(Path(run["path"]) / "weights.pt", run["arch"], int(run["depth"]), run["shortcut"])
    name = f"{run['arch']}-{run['depth']}"
    mean, square, predicted = per_image(model, images, labels, mean_image)
    median = np.median(square, 0)
    ratio = square / median  # [images, layers]
    worst = ratio.max(1)
    order = np.argsort(-worst)
    far = worst > FAR
    files = test_file_names(root)
    lines = [
        f"# Figure 7 of `{args.run}`: the images that carry its std",
        "",
        "Made by `python benchmarks/figure7_outliers.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
        f"(CPU, fp32, eval mode as Figure 7; data {split.source}). An image's *energy* in a layer is the mean of its "
        "squared response (after BN, before the ReLU or the addition) over channels and pixels; *x median* is that "
        "energy over the layer's median over the 10,000 test images.",
        "",
        f"**{int(far.sum())} of {len(labels):,} test images** are more than {FAR:g}x the median energy in some layer "
        f"(the largest: {worst.max():,.0f}x). Classes of those: "
        + ", ".join(f"{CLASSES[c]} {n}" for c, n in zip(*np.unique(labels.numpy()[far], return_counts=True)))
        + ".",
        "",
        "| test index | class | file | predicted | largest x median (layer) | first layer > 100x | layers > 100x |",
        "|---:|---|---|---|---:|---:|---:|",
    ]
    for i in order[: args.top]:
        over = np.flatnonzero(ratio[i] > FAR) + 1
        lines.append(
            f"| {i} | {CLASSES[int(labels[i])]} | {files[i] if files else ''} | {CLASSES[int(predicted[i])]} "
            f"| {worst[i]:,.0f} ({int(ratio[i].argmax()) + 1}) | {over[0] if len(over) else ''} | {len(over)} |"
        )

    # BN's running statistics or the weights: the same images normalised with a batch's statistics.
    outliers = order[: max(1, int(far.sum()))]
    ordinary = np.setdiff1d(np.random.default_rng(0).choice(len(labels), 500, replace=False), outliers)
    batch = np.concatenate([outliers, ordinary])
    _, train_square, _ = per_image(model, images[batch], labels[batch], mean_image, train_mode=True,
                                   batch_size=len(batch))  # fmt: skip
    train_ratio = train_square / np.median(train_square[len(outliers) :], 0)
    eval_ratio = ratio[batch]
    n = len(outliers)
    lines += [
        "",
        "## BN's running statistics or the weights?",
        "",
        f"The {n} outliers with {len(ordinary)} ordinary test images as one batch, BN in training mode (normalising "
        "with that batch's mean and variance, not its running statistics); energy over the ordinary images' median:",
        "",
        "| | median over outliers of their largest x median | largest | outliers still > 100x |",
        "|---|---:|---:|---:|",
        f"| eval mode (running statistics, as Figure 7) | {np.median(eval_ratio[:n].max(1)):,.0f} | "
        f"{eval_ratio[:n].max():,.0f} | {int((eval_ratio[:n].max(1) > FAR).sum())} of {n} |",
        f"| training mode (this batch's statistics) | {np.median(train_ratio[:n].max(1)):,.0f} | "
        f"{train_ratio[:n].max():,.0f} | {int((train_ratio[:n].max(1) > FAR).sum())} of {n} |",
    ]
    first = int(np.median([np.flatnonzero(ratio[i] > FAR)[0] for i in outliers if (ratio[i] > FAR).any()])) + 1
    bn = model.response_layers()[first - 1]
    lines += [
        "",
        f"Layer {first} (the outliers' median first layer above 100x): BN running variance per channel "
        f"min {bn.running_var.min():.3g}, median {bn.running_var.median():.3g}; |gamma| max {bn.weight.abs().max():.3g}.",
    ]

    # Figure 7 without the top 1% of images, against the comparison run.
    keep = np.ones(len(labels), bool)
    keep[order[: len(labels) // 100]] = False
    stds, robust = layer_std(mean, square), layer_std(mean, square, keep)
    lines += ["", "## Figure 7's std with and without the top 1% of images", ""]
    lines.append(f"{name}: mean std over layers {stds.mean():.3f} (all images), {robust.mean():.3f} (top 1% left out); "
                 f"median {np.median(stds):.3f} and {np.median(robust):.3f}.")  # fmt: skip
    if args.compare:
        other = row_of(args.compare)
        other_model = load_model(Path(other["path"]) / "weights.pt", other["arch"], int(other["depth"]),
                                 other["shortcut"])  # fmt: skip
        o_mean, o_square, _ = per_image(other_model, images, labels, mean_image)
        o_worst = (o_square / np.median(o_square, 0)).max(1)
        o_keep = np.ones(len(labels), bool)
        o_keep[np.argsort(-o_worst)[: len(labels) // 100]] = False
        o_stds, o_robust = layer_std(o_mean, o_square), layer_std(o_mean, o_square, o_keep)
        oname = f"{other['arch']}-{other['depth']}"
        lines.append(
            f"{oname}: mean {o_stds.mean():.3f} (all), {o_robust.mean():.3f} (top 1% left out); median "
            f"{np.median(o_stds):.3f} and {np.median(o_robust):.3f}; its largest image energy "
            f"{o_worst.max():,.0f}x its layer's median ({int((o_worst > FAR).sum())} images > 100x)."
        )
        if len(o_stds) == len(stds):
            lines.append(
                f"{name} below {oname} in {int((stds < o_stds).sum())} of {len(stds)} layers with all images, "
                f"{int((robust < o_robust).sum())} of {len(stds)} with each net's top 1% left out."
            )

    # Training images: the same count on 5,000 of them.
    pick = torch.randperm(len(split.train_labels), generator=torch.Generator().manual_seed(0))[:5000]
    _, tr_square, _ = per_image(model, split.train_images[pick], split.train_labels[pick], mean_image)
    tr_worst = (tr_square / median).max(1)  # against the test set's medians
    lines += [
        "",
        "## In the training images too?",
        "",
        f"{int((tr_worst > FAR).sum())} of 5,000 random training images are more than {FAR:g}x the test set's median "
        f"energy in some layer (largest {tr_worst.max():,.0f}x); the test set: {int(far.sum())} of 10,000.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
