"""(c) The way public CIFAR reproductions train (akamaster/pytorch_resnet_cifar10's train()), timed in
a process of its own.

torchvision's CIFAR10 dataset object with PIL transforms (RandomHorizontalFlip, RandomCrop(32, 4),
ToTensor, Normalize) in a DataLoader, the same network in eager NCHW fp32, a plain loop with a
per-step loss.item() and accuracy. It reads the benchmark's uint8 images: they are written to a
temporary cifar-10-batches-py folder that torchvision's CIFAR10 class reads itself (only its md5
check of the official files is skipped, since a JPEG copy or generated images cannot match it).

The process protocol (ReferenceProcess <-> serve): the parent starts `python -c` with the depth,
data root, workers, device and batch size as arguments; the child builds its loader and model,
prints "ready", then for each line "<warmup> <steps>" on its stdin prints the images per second of
one measurement; closing its stdin ends it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import resnet_repro

from ..data import CLASSES
from ..models import build_model
from ..threads import project_thread_env, user_thread_env
from .paths import ThreadEnv, reference_path

# The folder resnet_repro is imported from (a checkout, or site-packages): the reference's process imports it too.
PACKAGE_PARENT = Path(resnet_repro.__file__).resolve().parent.parent
# The reference's input normalisation, as akamaster/pytorch_resnet_cifar10 writes it (ImageNet's mean/std).
REFERENCE_MEAN, REFERENCE_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
        transform = T.Compose(
            [
                T.RandomHorizontalFlip(),
                T.RandomCrop(32, 4),
                T.ToTensor(),
                T.Normalize(REFERENCE_MEAN, REFERENCE_STD),
            ]
        )
        self.dataset = reference_dataset(data_root, transform)
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda"
        )
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
    reproduction's script does not have. thread_env="default" starts the reference with the
    environment as the user gave it (torch imported first, the OpenMP variables as they were before
    any entry point set them); "project" with the project's. The process builds its loader and
    model once and then waits, idle, for each measurement, so the paths still run in one rotation.
    """

    def __init__(
        self, depth: int, data_root: Path, workers: int, device: torch.device, batch_size: int, thread_env: ThreadEnv
    ):
        self.path = reference_path(workers, thread_env)
        environ = (user_thread_env if thread_env == "default" else project_thread_env)(dict(os.environ))
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), environ.get("PYTHONPATH")]))
        code = "import torch; from resnet_repro.bench.reference import serve; serve()"  # torch first
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (the child's stderr, closed by close())
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(depth), str(data_root), str(workers), str(device), str(batch_size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
            env=environ,
        )
        self.reply()  # "ready"

    def reply(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"the reference process ({self.path.code}) failed:\n{self.log.read()[-3000:]}")
        return line.strip()

    def measure(self, warmup: int, steps: int) -> float:
        self.process.stdin.write(f"{warmup} {steps}\n")
        return float(self.reply())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        self.log.close()


def serve() -> None:
    """The child side of ReferenceProcess: argv = depth, data root, workers, device, batch size."""
    depth, root, workers, device, batch_size = sys.argv[1:6]
    loop = Reference(int(depth), Path(root), int(workers), torch.device(device), int(batch_size))
    warnings.simplefilter("ignore")
    print("ready", flush=True)
    for line in sys.stdin:
        warmup, steps = map(int, line.split())
        print(f"{loop.measure(warmup, steps):.6f}", flush=True)
