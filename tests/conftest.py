"""Shared fixtures: tiny CIFAR-format data sets made on the spot, and configs composed from the package's conf/."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet_repro.config import RunSpec, compose, resolve
from resnet_repro.data import CLASSES

REPO = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"
TRAIN_PER_CLASS, TEST_PER_CLASS = 12, 4


def tiny_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images per class, NCHW uint8; each class has its own mean colour, so a net can learn it."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n)
    base = rng.integers(40, 215, size=(len(CLASSES), 3, 1, 1))
    images = np.clip(base[labels] + rng.normal(0, 25, size=(len(labels), 3, 32, 32)), 0, 255).astype(np.uint8)
    return images, labels


def write_batches(root: Path) -> Path:
    """torchvision's layout: cifar-10-batches-py/data_batch_1..5, test_batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = tiny_images(TRAIN_PER_CLASS, seed=0)
    for i, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        batch = {"data": images[part].reshape(len(part), -1), "labels": labels[part].tolist()}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    images, labels = tiny_images(TEST_PER_CLASS, seed=1)
    (folder / "test_batch").write_bytes(
        pickle.dumps({"data": images.reshape(len(labels), -1), "labels": labels.tolist()})
    )
    return root


def write_folders(root: Path, fmt: str = "png") -> Path:
    """The image-folder layout: train/<class>/NNNN.png, test/<class>/NNNN.png (lossless by default)."""
    for split, n, seed in (("train", TRAIN_PER_CLASS, 0), ("test", TEST_PER_CLASS, 1)):
        images, labels = tiny_images(n, seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:04d}.{fmt}")
    return root


# Processes a test starts in the background (test_resilience.start_run_py): ended after the test whatever
# happened in it, so that a failed or timed-out test leaves no training behind on the machine.
STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def end_started_processes():
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)


@pytest.fixture(scope="session")
def tiny_batches(tmp_path_factory) -> Path:
    return write_batches(tmp_path_factory.mktemp("batches"))


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> Path:
    return write_folders(tmp_path_factory.mktemp("folders"))


def make_config(overrides: list[str] | None = None):
    """The config `run.py` would see with these overrides."""
    return compose(overrides)


def make_spec(overrides: list[str] | None = None, check_data: bool = True) -> RunSpec:
    """The run `run.py` would train with these overrides (every setting checked)."""
    return resolve(compose(overrides), check_data=check_data)


def tiny_overrides(data_root: Path, out_dir: Path) -> list[str]:
    """A few steps on tiny data, small enough for a test (120 training images)."""
    return [
        f"data.root={data_root}",
        f"out_dir={out_dir}",
        "data.cache_dir=null",
        "data.subset=tiny",  # 12 + 4 images per class, not CIFAR-10's 5000 + 1000
        "data.val_size=20",
        "batch_size=16",
        "steps=8",
        "eval_every=4",
        "trainer.checkpoint_every=4",
        "trainer.progress_bar=false",
        "trainer.eval_batch_size=64",
    ]


def run_into_closed_pipe(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """`python <args> | head` where the reader is gone before the first line: every write fails, none by luck of
    timing. Returns the finished process, its stderr captured."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, *args],
            cwd=REPO,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
            env={**os.environ, **env},
        )
    finally:
        os.close(write)
