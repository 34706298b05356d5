"""(c) The way public CIFAR reproductions train (akamaster/pytorch_resnet_cifar10's train()), timed in
a process of its own.

torchvision's CIFAR10 dataset object with PIL transforms (RandomHorizontalFlip, RandomCrop(32, 4),
ToTensor, Normalize) in a DataLoader, the same network in eager NCHW fp32, a plain loop with a
per-step loss.item() and accuracy. It reads the benchmark's uint8 images: they are written to a
temporary cifar-10-batches-py folder that torchvision's CIFAR10 class reads itself (only its md5
check of the official files is skipped, since a JPEG copy or generated images cannot match it).

It runs in a process of its own (process.py), started with the depth, data root, workers, device and
batch size as arguments.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from resnet_repro.data import CLASSES
from resnet_repro.models import build_model
from resnet_repro.threads import project_thread_env, user_thread_env

from .paths import ThreadEnv, reference_path
from .process import PathProcess, serve

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


def reference_process(
    depth: int, data_root: Path, workers: int, device: torch.device, batch_size: int, thread_env: ThreadEnv
) -> PathProcess:
    """(c) in a process of its own, so that it runs with the thread environment a public script gets.

    A run sets GOMP_SPINCOUNT (see threads.py): part of the project's fast path, which a public
    reproduction's script does not have. thread_env="default" starts the reference with the
    environment as the user gave it (torch imported first, the OpenMP variables as they were before
    any entry point set them); "project" with the project's. The process builds its loader and
    model once and then waits, idle, for each measurement.
    """
    environ = (user_thread_env if thread_env == "default" else project_thread_env)(dict(os.environ))
    code = "import torch; from benchmarks.throughput.reference import serve_reference; serve_reference()"  # torch first
    args = [str(depth), str(data_root), str(workers), str(device), str(batch_size)]
    return PathProcess(reference_path(workers, thread_env), code, args, environ)


def serve_reference() -> None:
    """The child side of reference_process: argv = depth, data root, workers, device, batch size."""
    depth, root, workers, device, batch_size = sys.argv[1:6]
    serve(Reference(int(depth), Path(root), int(workers), torch.device(device), int(batch_size)))
