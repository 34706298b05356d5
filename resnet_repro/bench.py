"""Training throughput, three ways, in one run on one machine:

  (a) project    the real training path: TrainBatches + Classifier + the pl.Trainer a run builds
                 (train.build_module / train.build_trainer, so every speed switch in conf/config.yaml applies)
  (b) bare loop  the same module, optimizer, schedule and TrainBatches, stepped in a plain PyTorch loop
  (c) reference  the way public CIFAR reproductions train (akamaster/pytorch_resnet_cifar10 style):
                 torchvision's CIFAR10 dataset object with PIL transforms (RandomHorizontalFlip,
                 RandomCrop(32, 4), ToTensor, Normalize) in a DataLoader, the same network in eager
                 NCHW fp32, a plain loop with a per-step loss.item() and accuracy

Images per second are timed after warm-up, between the end of step `warmup` and the end of
step `warmup + steps`, data loading included. The paths are measured in turn, `repeats`
times in a rotating order (so a change in machine load hits all of them alike), and the
median is reported. The reference reads the same uint8 images: they are written to a temporary
cifar-10-batches-py folder that torchvision's CIFAR10 class reads itself (only its md5 check
of the official files is skipped, since a JPEG copy or generated images cannot match it).

    python -m resnet_repro.bench --data-root /tmp/cifar10            # real data (any layout data.py reads)
    python -m resnet_repro.bench                                      # generated images
    python -m resnet_repro.bench --set trainer.compile=true --depths 20
"""

from __future__ import annotations

if __name__ == "__main__":  # started as a program: the thread environment is set before torch is imported below
    from resnet_repro.threads import use_project_thread_env

    use_project_thread_env()

import argparse
import contextlib
import csv
import io
import logging
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from .config import ConfigError, RunSpec, compose, cpu_has_native_bf16, resolve
from .data import CLASSES, Split, TrainBatches, load_cifar10, split_cifar10
from .models import build_model
from .threads import project_thread_env, user_thread_env
from .train import build_module, build_trainer

# The folder that holds the package: the reference's own process imports this same package from there.
PACKAGE_PARENT = Path(__file__).resolve().parents[1]
# The reference's input normalisation, as akamaster/pytorch_resnet_cifar10 writes it (ImageNet's mean/std).
REFERENCE_MEAN, REFERENCE_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- setup


def run_spec(overrides: list[str]) -> RunSpec:
    """The run these overrides describe, as run.py would resolve it (the data is the benchmark's own)."""
    return resolve(compose(overrides), check_data=False)


def generated_split(n_train: int = 45000, seed: int = 0) -> Split:
    """Random images in CIFAR-10's shape: every path's cost is independent of the pixel values."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n_train,), generator=g)
    empty = images[:0]
    return Split(images, labels, empty, labels[:0], empty, labels[:0], images.float().mean(0) / 255, "generated images")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolved_device(spec: RunSpec) -> torch.device:
    return torch.device(spec.trainer.accelerator)


@contextlib.contextmanager
def quiet():
    """Hide Lightning's banner and the progress bar's output (the bar still runs: it is part of the path)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------- the three paths


class _Clock(pl.Callback):
    """Stamps the end of step `warmup` and of step `warmup + steps` (one device sync at each, none between),
    then stops the run: the config keeps its real length, so its schedule and compile=auto act as in a run."""

    def __init__(self, warmup: int, steps: int, device: torch.device):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.start = self.end = None

    def on_train_batch_end(self, trainer, *_):
        if trainer.global_step in (self.warmup, self.warmup + self.steps):
            sync(self.device)
            if trainer.global_step == self.warmup:
                self.start = time.perf_counter()
            else:
                self.end = time.perf_counter()
                trainer.should_stop = True


class ProjectPath:
    """(a) What `train.py` runs: build_module + build_trainer + TrainBatches, through trainer.fit."""

    def __init__(self, spec: RunSpec, split: Split, root_dir: Path, name: str = "a"):
        self.spec, self.split, self.root_dir, self.name = spec, split, root_dir, name
        self.module = build_module(spec)  # kept across repeats: a compiled model compiles once

    def measure(self, warmup: int, steps: int) -> float:
        device = resolved_device(self.spec)
        clock = _Clock(warmup, steps, device)
        threads = torch.get_num_threads()
        trainer = build_trainer(self.spec, self.root_dir, callbacks=[clock])
        batches = TrainBatches(self.split.train_images, self.split.train_labels, self.split.mean_image, self.spec.batch_size,
                               self.spec.seed, start_step=lambda: trainer.global_step, device=trainer.strategy.root_device,
                               channels_last=self.spec.trainer.channels_last)  # fmt: skip
        try:
            with quiet():
                trainer.fit(self.module, train_dataloaders=batches)
        finally:
            torch.set_num_threads(threads)  # trainer.threads of a variant must not leak into the next path
        return steps * self.spec.batch_size / (clock.end - clock.start)


class BareLoop:
    """(b) The same module (model, compile, memory format), optimizer, lr schedule and TrainBatches, no Lightning."""

    name = "b"

    def __init__(self, spec: RunSpec, split: Split, module: pl.LightningModule):
        self.spec, self.split, self.module = spec, split, module
        self.device = resolved_device(spec)
        mode = spec.trainer.precision
        if mode not in ("32-true", "bf16-mixed"):
            raise ValueError(f"the bare loop knows precision 32-true and bf16-mixed, not {mode}")
        self.autocast = mode == "bf16-mixed"

    def measure(self, warmup: int, steps: int) -> float:
        module = self.module.to(self.device).train()
        configured = module.configure_optimizers()
        optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
        batches = iter(TrainBatches(self.split.train_images, self.split.train_labels, self.split.mean_image,
                                    self.spec.batch_size, self.spec.seed, device=self.device,
                                    channels_last=self.spec.trainer.channels_last))  # fmt: skip
        start = None
        for i in range(warmup + steps):
            images, labels = next(batches)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss = F.cross_entropy(module(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if i == warmup - 1:
                sync(self.device)
                start = time.perf_counter()
        sync(self.device)
        return steps * self.spec.batch_size / (time.perf_counter() - start)


def write_batches(images: torch.Tensor, labels: torch.Tensor, root: Path) -> Path:
    """torchvision's cifar-10-batches-py/data_batch_1..5 holding these uint8 NCHW images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    data = images.reshape(len(images), -1).numpy()
    for i, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        batch = {"data": data[part], "labels": labels[part].tolist()}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=4))
    return root


def reference_dataset(root: Path, transform: Callable):
    import torchvision

    class CIFAR10(torchvision.datasets.CIFAR10):
        """torchvision's CIFAR10 as it is; only the md5 checks of the official files are skipped."""

        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = list(CLASSES)
            self.class_to_idx = {name: i for i, name in enumerate(CLASSES)}

    return CIFAR10(str(root), train=True, transform=transform)


class Reference:
    """(c) A public reproduction's training loop (akamaster/pytorch_resnet_cifar10's train())."""

    def __init__(self, depth: int, data_root: Path, workers: int, device: torch.device, batch_size: int = 128):
        import torchvision.transforms as T

        self.device, self.workers = device, workers
        transform = T.Compose([
            T.RandomHorizontalFlip(), T.RandomCrop(32, 4), T.ToTensor(), T.Normalize(REFERENCE_MEAN, REFERENCE_STD),
        ])  # fmt: skip
        self.dataset = reference_dataset(data_root, transform)
        self.loader = torch.utils.data.DataLoader(self.dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                                  pin_memory=device.type == "cuda")  # fmt: skip
        self.model = build_model("resnet", depth).to(device)  # eager, NCHW, fp32
        self.criterion = torch.nn.CrossEntropyLoss().to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), 0.1, momentum=0.9, weight_decay=1e-4)

    def batches(self):
        while True:  # epochs, each with a fresh shuffle (and, as in the reference, fresh workers)
            yield from self.loader

    def measure(self, warmup: int, steps: int) -> float:
        self.model.train()
        batches = self.batches()  # workers start here: inside the warm-up, not the timed steps
        start, seen = None, 0
        for i in range(warmup + steps):
            images, target = next(batches)
            target, images = target.to(self.device), images.to(self.device)
            output = self.model(images)
            loss = self.criterion(output, target)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            prec1 = (output.argmax(1) == target).float().mean() * 100
            loss.item(), prec1.item()  # the reference's per-step AverageMeter updates
            if i == warmup - 1:
                sync(self.device)
                start = time.perf_counter()
            elif i >= warmup:
                seen += len(target)
        sync(self.device)
        elapsed = time.perf_counter() - start
        batches.close()  # shuts the workers down before the next path is timed
        return seen / elapsed


class ReferenceProcess:
    """(c) in a process of its own, so that it runs with the thread environment a public script gets.

    A run sets GOMP_SPINCOUNT (see threads.py): part of the project's fast path, which a public
    reproduction's script does not have. env="default" starts the reference with the environment as
    the user gave it (torch imported first, the OpenMP variables as they were before any entry point
    set them); env="project" with the project's. The process builds its loader and model once and
    then waits, idle, for each measurement, so the paths still run in one rotation.
    """

    def __init__(self, depth: int, data_root: Path, workers: int, device: torch.device, batch_size: int, env: str):
        self.name = f"c{workers}" + ("p" if env == "project" else "")
        environ = (user_thread_env if env == "default" else project_thread_env)(dict(os.environ))
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), environ.get("PYTHONPATH")]))
        code = "import torch; from resnet_repro.bench import reference_process; reference_process()"  # torch first
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(depth), str(data_root), str(workers), str(device), str(batch_size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1, env=environ,
        )  # fmt: skip
        self.reply()  # "ready"

    def reply(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"the reference process ({self.name}) failed:\n{self.log.read()[-3000:]}")
        return line.strip()

    def measure(self, warmup: int, steps: int) -> float:
        self.process.stdin.write(f"{warmup} {steps}\n")
        return float(self.reply())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        self.log.close()


def reference_process() -> None:
    """The child side of ReferenceProcess: argv = depth, data root, workers, device, batch size."""
    depth, root, workers, device, batch_size = sys.argv[1:6]
    reference = Reference(int(depth), Path(root), int(workers), torch.device(device), int(batch_size))
    warnings.simplefilter("ignore")
    print("ready", flush=True)
    for line in sys.stdin:
        warmup, steps = map(int, line.split())
        print(f"{reference.measure(warmup, steps):.6f}", flush=True)


# --------------------------------------------------------------------------- machine and report


def machine() -> dict[str, str]:
    cpu, details = platform.processor() or platform.machine(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key in ("model name", "cpu family", "model", "flags") and key not in details:
                details[key] = value
            if key == "processor" and details:
                break
    except OSError:
        pass
    cpu = details.get("model name", cpu)
    if "cpu family" in details:  # a VM may name only the vendor: family/model say which generation
        cpu_detail = f"family {details['cpu family']} model {details.get('model', '?')}"
        cpu_detail += ", AVX-512" if "avx512f" in details.get("flags", "").split() else ""
        cpu_detail += ", native bf16" if cpu_has_native_bf16() else ""
    else:
        cpu_detail = ""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    import torchvision

    return {
        "cpu": cpu + (f" ({cpu_detail})" if cpu_detail else ""), "cores": str(cores), "torch threads": str(torch.get_num_threads()), "gpu": gpu,
        "torch": torch.__version__, "torchvision": torchvision.__version__, "pytorch_lightning": pl.__version__,
        "python": platform.python_version(),
    }  # fmt: skip


def default_out(info: dict[str, str]) -> Path:
    slug = "".join(ch if ch.isalnum() else "-" for ch in info["cpu"].split(" (")[0].lower()).strip("-")
    slug = "-".join(part for part in slug.split("-") if part)
    name = f"{slug}-{info['cores']}c"
    if info["gpu"] != "none":
        name += "-" + "-".join(p for p in "".join(c if c.isalnum() else "-" for c in info["gpu"].lower()).split("-") if p)
    out = Path("results") / "bench" / f"{name}.md"  # in the current directory (a checkout's results/)
    if out.exists() or out.with_suffix(".csv").exists():  # an earlier benchmark is kept: a new one gets its date
        out = out.with_name(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.md")
    return out


def load_text() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


@dataclass
class Row:
    depth: int
    path: str
    repeat: int
    images_per_s: float
    load: str


LABELS = {"a": "(a) project, Lightning", "b": "(b) bare loop"}


def label(path: str) -> str:
    if path.startswith("a "):  # a variant of the project path: "a <overrides>"
        return f"(a) with {path[2:]}"
    if path.startswith("c"):  # c<workers>, or c<workers>p with the project's thread environment
        return f"(c) reference, {path[1:].rstrip('p')} workers" + (", project's OpenMP env" if path.endswith("p") else "")
    return LABELS[path]


def render(rows: list[Row], info: dict, settings: dict, loads: list[str]) -> str:
    depths = sorted({r.depth for r in rows})
    paths = list(dict.fromkeys(r.path for r in rows))
    refs = [p for p in paths if p.startswith("c") and not p.endswith("p")]  # as a public script runs
    same_env = [p for p in paths if p.startswith("c") and p.endswith("p")]  # with the project's OMP env
    median = {(d, p): statistics.median(r.images_per_s for r in rows if r.depth == d and r.path == p) for d in depths for p in paths}
    spread = {(d, p): [r.images_per_s for r in rows if r.depth == d and r.path == p] for d in depths for p in paths}
    lines = ["# Training throughput (images/second, after warm-up)", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- {k}: {v}" for k, v in settings.items()]
    lines += [f"- load average (1, 5, 15 min) before each depth and at the end: {' | '.join(loads)}", ""]
    head = ["net", *[label(p) for p in paths], "a/c", *(["a/c, same OpenMP env"] if same_env else []), "a/b"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in depths:
        ratio = lambda group: f"{median[d, 'a'] / max(median[d, p] for p in group):.2f}" if group else "-"
        cells = [f"ResNet-{d}", *[f"{median[d, p]:.0f}" for p in paths],
                 ratio(refs), *([ratio(same_env)] if same_env else []), f"{median[d, 'a'] / median[d, 'b']:.2f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    variants = [p for p in paths if p.startswith("a ")]
    if variants:
        lines += ["", "Variants of the project path, measured in the same rotation (speed relative to (a)):", ""]
        for d in depths:
            lines.append(f"- ResNet-{d}: " + "; ".join(f"{label(p)}: {median[d, p] / median[d, 'a']:.2f}" for p in variants))
    lines += ["", "Medians over the repeats; a/c divides by the fastest reference setting run as a public script runs",
              "(torch's default OpenMP environment); \"same OpenMP env\" divides by the reference run with the",
              "project's OpenMP setting (GOMP_SPINCOUNT), which isolates the code paths. The paths of one repeat run",
              "within a minute or two of each other, so the ratios within each repeat show how much a drift in the",
              "machine's load moved the medians:", ""]
    for d in depths:
        repeats = range(len(spread[d, "a"]))
        per_c = [spread[d, "a"][r] / max(spread[d, p][r] for p in refs) for r in repeats] if refs else []
        per_b = [spread[d, "a"][r] / spread[d, "b"][r] for r in repeats]
        lines.append(f"- ResNet-{d}: a/c per repeat " + ", ".join(f"{x:.2f}" for x in per_c)
                     + (f" (median {statistics.median(per_c):.2f})" if per_c else "")
                     + "; a/b per repeat " + ", ".join(f"{x:.2f}" for x in per_b) + f" (median {statistics.median(per_b):.2f})")  # fmt: skip
    lines += ["", "Every measurement (images/s, in repeat order):", ""]
    for d in depths:
        lines.append(f"- ResNet-{d}: " + "; ".join(f"{p} " + ", ".join(f"{x:.0f}" for x in spread[d, p]) for p in paths))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m resnet_repro.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="CIFAR-10 in any layout data.py reads; default: generated images")
    parser.add_argument("--depths", default="20,56", help="ResNet depths (default 20,56)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each measurement (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each path, interleaved (default 3)")
    parser.add_argument("--ref-workers", default="2,4", help="DataLoader workers of the reference, a list; a/c divides by "
                        "the fastest (default 2,4: akamaster's default is 4, and 2 can be faster on 2 cores)")  # fmt: skip
    parser.add_argument("--ref-env", default="default", help="thread environment of the reference: default (as a public "
                        "script runs: torch's OpenMP defaults), project (the project's GOMP_SPINCOUNT), or both: "
                        "default,project")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for (a) and (b), e.g. --set trainer.compile=true")  # fmt: skip
    parser.add_argument("--also", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="also time the project path with these overrides, in the same rotation "
                        "(e.g. --also trainer.compile=true); reported relative to (a)")  # fmt: skip
    parser.add_argument("--out", help="markdown file, which must not exist yet (a .csv of every measurement is written "
                        "beside it); default results/bench/<cpu>-<cores>c[-<gpu>].md, dated if that one exists")  # fmt: skip
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1")

    if args.out and (Path(args.out).exists() or Path(args.out).with_suffix(".csv").exists()):
        parser.error(f"--out {args.out} (or its .csv) exists; name another file, or move that one away first")

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    depths = [int(d) for d in args.depths.split(",")]
    workers = [int(w) for w in args.ref_workers.split(",")]
    envs = args.ref_env.split(",")
    if not set(envs) <= {"default", "project"}:
        parser.error("--ref-env takes default, project or default,project")
    try:
        base = run_spec(args.set)
    except ConfigError as e:
        parser.error(f"--set: {e}")
    if args.data_root:
        split = split_cifar10(load_cifar10(args.data_root, cache_dir=base.data.cache_dir), base.data.val_size, base.data.split_seed)
    else:
        split = generated_split()
    info = machine()
    settings = {
        "data": f"{split.source}, {len(split.train_labels)} training images" + (f" ({args.data_root})" if args.data_root else ""),
        "project path (a, b)": f"channels_last={base.trainer.channels_last}, compile={base.config['trainer']['compile']} "
        f"({'compiled' if base.trainer.compiled else 'eager'} for a run of {base.steps} steps), threads={base.trainer.threads or 'torch default'}, "
        f"precision={base.trainer.precision}, batch {base.batch_size}, progress bar={base.trainer.progress_bar}",
        "reference (c)": "torchvision CIFAR10 (read from a generated cifar-10-batches-py of the same images) + PIL transforms, "
        f"DataLoader workers {args.ref_workers}, eager NCHW fp32, each in a process of its own, thread environment: {args.ref_env} "
        "(default: as the user's environment has it, without the project's GOMP_SPINCOUNT)",
        "variants of (a)": "; ".join(args.also) or "none",
        "thread environment": ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                                        if k in os.environ) or "OMP_* unset (torch's defaults)",
        "timing": f"{args.warmup} warm-up + {args.steps} timed steps per measurement, {args.repeats} repeats interleaved",
        "command": "python -m resnet_repro.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
    }  # fmt: skip
    print("\n".join(f"{k}: {v}" for k, v in {**info, **settings}.items()), flush=True)

    rows: list[Row] = []
    loads: list[str] = []
    with tempfile.TemporaryDirectory(prefix="resnet-bench-") as tmp:
        ref_root = write_batches(split.train_images, split.train_labels, Path(tmp) / "cifar10")
        for depth in depths:
            loads.append(load_text())
            spec = run_spec([f"depth={depth}", "arch=resnet", *args.set])
            project = ProjectPath(spec, split, Path(tmp) / "lightning")
            references = [ReferenceProcess(depth, ref_root, w, resolved_device(spec), spec.batch_size, env)
                          for env in envs for w in workers]  # fmt: skip
            paths = [project, BareLoop(spec, split, project.module), *references]
            for also in args.also:
                variant = run_spec([f"depth={depth}", "arch=resnet", *args.set, *also.split(",")])
                paths.append(ProjectPath(variant, split, Path(tmp) / "lightning", name=f"a {also}"))
            try:
                for repeat in range(args.repeats):
                    k = repeat % len(paths)
                    for path in paths[k:] + paths[:k]:
                        value = path.measure(args.warmup, args.steps)
                        rows.append(Row(depth, path.name, repeat, value, load_text()))
                        print(f"ResNet-{depth} repeat {repeat}: {label(path.name)}: {value:.1f} img/s (load {rows[-1].load})", flush=True)
            finally:
                for reference in references:
                    reference.close()
    loads.append(load_text())

    table = render(rows, info, settings, loads)
    print("\n" + table)
    out = Path(args.out) if args.out else default_out(info)  # chosen at the end: no file is overwritten
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["depth", "path", "repeat", "images_per_s", "load_after"])
        writer.writerows([r.depth, label(r.path), r.repeat, f"{r.images_per_s:.2f}", r.load] for r in rows)
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return table


if __name__ == "__main__":
    main()
