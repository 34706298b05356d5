"""Cross-check of the data copy: a ResNet-20 trained by an independent, public-style loop.

Why: this project's nets end ~4 points above the paper on the JPEG q75 copy of CIFAR-10. Two runs of
one code on one copy cannot tell a data effect from a training difference. This script trains the
same protocol with none of the project's training code: its own model (akamaster's resnet.py, option
A by zero-padding), torchvision's CIFAR10 dataset with PIL transforms in a DataLoader, eager NCHW fp32,
MultiStepLR, a plain loop. It shares only the data: the project's decoded images of the copy and its
45k/5k split (`resnet_repro.data`), so both train on exactly the same 45,000 images.

Differences from the project, on purpose (they are how public loops are written): inputs are
normalised with ImageNet's mean/std (the project subtracts the per-pixel mean); the shuffle and the
augmentation are torch's DataLoader and torchvision's transforms; the init is akamaster's
(kaiming_normal_ on conv and linear weights).

    python benchmarks/crosscheck.py --data-root ../shared/data/cifar10-jpeg.tar.xz --steps 6400

writes results/crosscheck/<name>/: metrics.csv (step, split, error, loss, lr, elapsed_s), result.json
(the final errors, settings, command, commit, machine) and its README.md.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from resnet_repro.data import CLASSES, load_cifar10, split_cifar10  # noqa: E402
from resnet_repro.machine import read_cpu  # noqa: E402

# This project's run of the same protocol (Milestone A of the evidence campaign), compared against.
PROJECT_RUN = REPO / "results" / "tenth" / "runs" / "resnet-20" / "seed0"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # as akamaster/pytorch_resnet_cifar10 normalises


# ---------------------------------------------------------------- the model, akamaster's resnet.py
class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:  # option A: subsample, zero-pad the new channels both sides
            pad = planes // 4
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, n: int, num_classes: int = 10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int):
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


# ---------------------------------------------------------------- the data, as torchvision reads it
def write_cifar_batches(split, root: Path) -> None:
    """The split's uint8 images as torchvision's cifar-10-batches-py (NCHW rows, as the official files)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name, images, labels):
        batch = {"data": images.reshape(len(images), -1).numpy(), "labels": labels.tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))

    parts = np.array_split(np.arange(len(split.train_labels)), 5)
    for i, part in enumerate(parts, start=1):
        dump(f"data_batch_{i}", split.train_images[part], split.train_labels[part])
    dump("test_batch", split.test_images, split.test_labels)
    dump("val_batch", split.val_images, split.val_labels)


def cifar10(root: Path, part: str, transform):
    import torchvision

    class CIFAR10(torchvision.datasets.CIFAR10):
        """torchvision's class as it is; only the md5 checks of the official files are skipped."""

        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = list(CLASSES)
            self.class_to_idx = {c: i for i, c in enumerate(CLASSES)}

    dataset = CIFAR10(str(root), train=part == "train", transform=transform)
    if part == "val":  # torchvision knows train and test; the held-out 5k are read the same way
        with open(root / "cifar-10-batches-py" / "val_batch", "rb") as f:
            batch = pickle.load(f)
        dataset.data = batch["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        dataset.targets = batch["labels"]
    return dataset


class EpochSampler(torch.utils.data.Sampler):
    """A fresh random order every epoch, as shuffle=True draws, but a function of (seed, epoch), so a
    resumed cross-check continues the batch order where it stopped (the augmentations' random draws,
    made in the workers, are not resumed: a resumed run sees other, equally random, crops and flips)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.position = n, seed, 0

    def start_at(self, images_seen: int) -> None:
        self.position = images_seen

    def __len__(self) -> int:
        return self.n - self.position % self.n

    def __iter__(self):
        epoch, offset = divmod(self.position, self.n)
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        self.position += self.n - offset  # the next epoch starts at its beginning
        yield from order[offset:].tolist()


@torch.no_grad()
def evaluate(model, loader) -> tuple[float, float]:
    model.eval()
    wrong, loss, n = 0, 0.0, 0
    for images, target in loader:
        out = model(images)
        loss += F.cross_entropy(out, target, reduction="sum").item()
        wrong += (out.argmax(1) != target).sum().item()
        n += len(target)
    model.train()
    return wrong / n, loss / n


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks"], cwd=REPO, capture_output=True)
        return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", help="the CIFAR-10 copy, as run.py's data.root (needed to train)")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--steps", type=int, default=6400, help="iterations; lr /10 at 50%% and 75%% (default 1/10)")
    p.add_argument("--eval-every", type=int, default=800)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop-at", type=int, default=None, help="stop after the checkpoint at this step (resume later)")
    p.add_argument("--val-size", type=int, default=5000, help="held-out training images (the paper: 5000)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--checkpoint-every", type=int, default=200, help="iterations between checkpoints (a multiple of 50)"
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--name", default=None, help="folder under --out (default resnet-<depth>-<steps>)")
    p.add_argument("--out", default=str(REPO / "results" / "crosscheck"))
    p.add_argument("--summarise", metavar="DIR", help="only (re)write DIR/README.md from its result.json")
    args = p.parse_args(argv)
    if args.summarise:
        print(summarise(Path(args.summarise)))
        return 0
    if not args.data_root:
        p.error("--data-root is needed to train (e.g. --data-root ../shared/data/cifar10-jpeg.tar.xz)")
    if (args.depth - 2) % 6 or args.depth < 8:
        p.error(f"--depth {args.depth} is not 6n+2; use 20, 32, 44, 56, ...")
    if args.steps < 4 or args.eval_every < 1 or args.checkpoint_every < 50 or args.checkpoint_every % 50:
        p.error("--steps must be at least 4, --eval-every at least 1, --checkpoint-every a multiple of 50")
    out = Path(args.out) / (args.name or f"resnet-{args.depth}-{args.steps}")
    if (out / "result.json").exists():
        p.error(f"{out} holds a finished cross-check; pass --name to write another")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    import torchvision.transforms as T

    split = split_cifar10(
        load_cifar10(args.data_root, cache_dir=os.environ.get("RESNET_REPRO_CACHE", "~/.cache/resnet_repro")),
        args.val_size,
    )
    tmp = Path(tempfile.mkdtemp(prefix="crosscheck-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # 176 MB of batches; every exit path leaves none
    write_cifar_batches(split, tmp)
    train_tf = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(32, 4), T.ToTensor(), T.Normalize(MEAN, STD)])
    eval_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train_set = cifar10(tmp, "train", train_tf)
    sampler = EpochSampler(len(train_set), args.seed)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=128, sampler=sampler, num_workers=args.workers, persistent_workers=args.workers > 0
    )
    eval_loaders = {
        part: torch.utils.data.DataLoader(cifar10(tmp, part, eval_tf), batch_size=256, num_workers=args.workers)
        for part in ("val", "test")
    }

    model = ResNet((args.depth - 2) // 6)
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [args.steps // 2, args.steps * 3 // 4], 0.1)

    out.mkdir(parents=True, exist_ok=True)
    checkpoint_file = out / "checkpoint.pt"
    step, images_seen, elapsed_before, rows = 0, 0, 0.0, ["step,split,error,loss,lr,elapsed_s"]
    if checkpoint_file.is_file():  # resume: a session's end (or a kill) costs at most checkpoint_every steps
        state = torch.load(checkpoint_file, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, images_seen, elapsed_before = state["step"], state["images_seen"], state["elapsed_s"]
        rows += [r for r in (out / "metrics.csv").read_text().splitlines()[1:] if int(r.split(",")[0]) <= step]
        print(f"resuming {out} at step {step}")
    metrics = open(out / "metrics.csv", "w")
    metrics.write("\n".join(rows) + "\n")
    sampler.start_at(images_seen)
    start, wrong, seen, loss_sum = time.perf_counter() - elapsed_before, 0, 0, 0.0
    while step < args.steps:
        for images, target in loader:
            output = model(images)
            loss = F.cross_entropy(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()  # per iteration: the milestones are iterations, as in the paper
            step += 1
            wrong += (output.argmax(1) != target).sum().item()
            seen += len(target)
            images_seen += len(target)
            loss_sum += loss.item() * len(target)
            if step % 50 == 0:  # training error of the last 50 batches, as the project logs it
                elapsed = time.perf_counter() - start
                metrics.write(f"{step},train,{wrong / seen},{loss_sum / seen},{lr},{elapsed:.2f}\n")
                wrong, seen, loss_sum = 0, 0, 0.0
            if step % args.eval_every == 0 or step == args.steps:
                for part, eval_loader in eval_loaders.items():
                    error, eval_loss = evaluate(model, eval_loader)
                    metrics.write(f"{step},{part},{error},{eval_loss},{lr},{time.perf_counter() - start:.2f}\n")
                print(f"step {step}/{args.steps}: test error {error:.2%} ({time.perf_counter() - start:.0f} s)")
            if step % 50 == 0 and (step % args.checkpoint_every == 0 or step == args.steps):
                metrics.flush()
                os.fsync(metrics.fileno())
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "step": step,
                    "images_seen": images_seen,
                    "elapsed_s": time.perf_counter() - start,
                }
                torch.save(state, out / ".checkpoint.pt.tmp")
                os.replace(out / ".checkpoint.pt.tmp", checkpoint_file)
                if step == args.stop_at and step < args.steps:
                    print(f"stopped at step {step}; the same command resumes it")
                    return 0
            if step == args.steps:
                break
    metrics.close()

    cpu = read_cpu()
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    final = {part: float(e) for s, part, e, *_ in rows if int(s) == args.steps and part in ("val", "test")}
    result = {
        "what": f"ResNet-{args.depth}, an independent public-style loop (benchmarks/crosscheck.py)",
        "steps": args.steps,
        "seed": args.seed,
        "final_val_error": final["val"],
        "final_test_error": final["test"],
        "data": split.source,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]),
        "code_commit": git_commit(),
        "machine": f"{cpu.name} family {cpu.family} model {cpu.model}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    checkpoint_file.unlink(missing_ok=True)  # finished: the result and the metrics are the record
    print(json.dumps(result, indent=1))
    if args.steps in test_errors(PROJECT_RUN / "metrics.csv"):
        print(summarise(out))
    else:
        print(f"no step {args.steps} in {PROJECT_RUN}: no README comparing the two")
    return 0


def test_errors(metrics: Path) -> dict[int, float]:
    rows = [line.split(",") for line in metrics.read_text().splitlines()[1:]]
    return {int(step): float(error) for step, split, error, *_ in rows if split == "test"}


def summarise(out: Path, project_run: Path | None = None) -> Path:
    """README.md beside result.json: the cross-check's test error beside this project's run of the same
    protocol, at every step both evaluated, with the noise the comparison is judged against."""
    result = json.loads((out / "result.json").read_text())
    project_run = project_run or PROJECT_RUN
    ours, theirs = test_errors(project_run / "metrics.csv"), test_errors(out / "metrics.csv")
    steps = sorted(set(ours) & set(theirs))
    final = result["steps"]
    p, q = ours[final], theirs[final]
    # Test-set sampling: each error is a mean over 10,000 images, std sqrt(p(1-p)/n); two nets' errors on one
    # test set are correlated, so the std of their difference is at most the independent sum (taken here).
    noise = ((p * (1 - p) + q * (1 - q)) / 10_000) ** 0.5
    margin = abs(p - q)
    verdict = (
        "they agree (the margin is within twice the test-set sampling noise)"
        if margin <= 2 * noise
        else "they disagree (the margin is beyond twice the test-set sampling noise)"
    )
    lines = [
        f"# Cross-check of the data copy: {result['what'].split(',')[0]} by an independent loop",
        "",
        "Same data (the project's decoded JPEG q75 copy of CIFAR-10 and its 45k/5k split), same protocol",
        f"({final:,} iterations, lr 0.1, /10 at 50% and 75%, batch 128, momentum 0.9, weight decay 1e-4, flip +",
        "4-pixel-pad crop), none of the project's training code: `benchmarks/crosscheck.py` (its own model,",
        "torchvision's CIFAR10 + PIL transforms + DataLoader, eager NCHW fp32, ImageNet mean/std normalisation",
        "instead of the per-pixel mean, akamaster's init). One seed each.",
        "",
        "| step | this project (`results/tenth/`, resnet-20 seed 0) | independent loop (seed 0) |",
        "|---:|---:|---:|",
        *[f"| {s:,} | {ours[s]:.2%} | {theirs[s]:.2%} |" for s in steps],
        "",
        f"Final test error: **{p:.2%}** (this project) vs **{q:.2%}** (independent loop): a margin of "
        f"{margin * 100:.2f} points against a test-set sampling noise of {noise * 100:.2f} points (1 sigma of the "
        f"difference, taken as independent): **{verdict}**. Seed-to-seed noise is not measured here (one seed "
        "each; it would widen the noise, not narrow it); the public re-run of the full schedule measured a seed "
        "std of 0.13-0.27 points (external).",
        "",
        "What it says: "
        + (
            "two implementations that share only the data agree on it, to the noise of one seed each. At this "
            "schedule (1/10 of the paper's), this project's training code is not what sets its error; the offset "
            "against the paper's Table 6 is measured at the full schedule, where this comparison has not been "
            "run, so it points at the data copy (and the protocol both follow) without proving it there."
            if margin <= 2 * noise
            else "the two implementations disagree on this copy: the offset against the paper may be a training "
            "difference; to be chased before anything else."
        ),
        "",
        f"Command: `{result['command']}`  ",
        f"Code: {result['code_commit']}; machine: {result['machine']}; torch {result['torch']}; "
        f"data: {result['data']}; wall time {result['wall_s'] / 3600:.2f} h (shared with other work).",
        "",
    ]
    readme = out / "README.md"
    readme.write_text("\n".join(lines))
    return readme


if __name__ == "__main__":
    sys.exit(main())
