"""CIFAR-10 as uint8 tensors, a train/val split, and batched augmentation on the device.

Sources, detected from ``root``:
  * torchvision's layout: ``root/cifar-10-batches-py/`` (or ``root`` is that folder)
  * the image-folder layout: ``root/train/<class>/*``, ``root/test/<class>/*``
  * a .tar/.tar.gz/.tar.xz archive of the image-folder layout (e.g. ../shared/data's)
  * ``download=True``: torchvision fetches the official archive into ``root``

Images are decoded once and cached as one uint8 tensor file, so a second run
starts in seconds. Training batches are then cut and augmented as whole-batch
tensor operations on the training device: no PIL, no worker processes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import pickle
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz")
PAD = 4  # pixels of zero padding on each side before the random 32x32 crop
# CIFAR-10's images per class: what data.subset=null requires (a deliberate subset names itself instead)
TRAIN_PER_CLASS, TEST_PER_CLASS = 5000, 1000


class DataError(ValueError):
    """The data cannot be found or read; the message says how to fix it."""


@dataclass
class Cifar10:
    """The official train and test sets as uint8 NCHW tensors, with a label for figures."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  # e.g. "CIFAR-10" or "CIFAR-10 (JPEG q75 copy)"


@dataclass
class Split:
    """What training sees: train/val/test tensors and the per-pixel mean of the training images."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean_image: torch.Tensor  # float32 [3, 32, 32], pixel values in [0, 1]
    source: str
    fingerprint: str | None = None  # data_fingerprint of the data it was split from, where training asked


# --------------------------------------------------------------------------- sources


def _unmake(lock: Path, made: list[Path]) -> None:
    """A failed download leaves nothing: its lock, and the folders made for it while they are empty."""
    lock.unlink(missing_ok=True)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


def detect_layout(root: Path) -> str | None:
    if root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    if (root / "cifar-10-batches-py" / "data_batch_1").is_file():
        return "batches"
    if (root / "data_batch_1").is_file() and (root / "test_batch").is_file():
        return "batches"
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "folders"
    return None


def missing_data_message(root: Path, download_failed: str | None = None) -> str:
    """One line: no data at `root` (and why a download failed, if one was tried), and the three ways to give it."""
    tried = f", and downloading it there failed ({download_failed})" if download_failed else ""
    again = "retry data.download=true when online" if download_failed else "add data.download=true"
    return (
        f"no CIFAR-10 found at data.root={root}{tried}: point at a copy with data.root=<folder or .tar.xz> "
        f"or env CIFAR10_ROOT=<same> (torchvision's cifar-10-batches-py/, or the image-folder layout "
        f"train/<class>/*.jpg + test/<class>/*.jpg, or a .tar.xz of it, e.g. data.root=../shared/data/cifar10-jpeg.tar.xz), "
        f"or {again} to download the original (170 MB) into data.root"
    )


def download_cifar10(root: Path) -> None:
    """torchvision's download of the official archive into `root`, one process at a time; a DataError of one
    line when it fails (offline, a proxy, a full disk), never torchvision's tracebacks."""
    from filelock import FileLock

    made = [p for p in (root, *root.parents) if not p.exists()]  # removed again if nothing comes
    lock = root / ".download.lock"
    try:
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock)):  # two runs of a parallel sweep: the second waits, then finds it
            if detect_layout(root) is None:
                import torchvision

                torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as e:  # noqa: BLE001 (urllib, ssl, OSError...: what failed, in one line)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _unmake(lock, made)
        raise DataError(
            missing_data_message(root, f"{type(e).__name__}: {reason}" if reason else type(e).__name__)
        ) from None
    lock.unlink(missing_ok=True)
    if detect_layout(root) is None:
        raise DataError(missing_data_message(root, "torchvision left no cifar-10-batches-py/"))


def _read_batches(root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root

    def read(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for name in names:
            path = folder / name
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="latin1")
                data, batch_labels = np.asarray(batch["data"]), list(batch["labels"])
            except Exception as e:  # noqa: BLE001 (OSError, a torn pickle, a pickle of something else: one line)
                raise DataError(
                    f"cannot read CIFAR-10 batch {path} ({_first_line(e)}); re-download it (data.download=true)"
                ) from None
            # CIFAR-10's rows: 3072 bytes (32x32 RGB, uint8) each, and a whole-number label per row. Cast as they
            # are, floats in [0, 1] would be black images, and labels 3.7 or "3" other labels, all trained on.
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise DataError(
                    f"CIFAR-10 batch {path} holds {data.dtype} data of shape {data.shape}, not 32x32 RGB images "
                    f"(uint8 rows of 3072 values); re-download it (data.download=true)"
                )
            odd = [y for y in batch_labels if isinstance(y, bool) or not isinstance(y, (int, np.integer))]
            if odd:
                raise DataError(
                    f"CIFAR-10 batch {path} has labels that are not whole numbers (e.g. {odd[0]!r}); "
                    f"re-download it (data.download=true)"
                )
            images.append(data.reshape(-1, 3, 32, 32))
            labels.extend(batch_labels)
        labels = torch.tensor(labels, dtype=torch.int64)
        images = torch.from_numpy(np.concatenate(images))
        if len(labels) != len(images) or len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < 10):
            raise DataError(f"the batches in {folder} do not hold CIFAR-10's labels 0-9; re-download them")
        return images, labels

    train = read([f"data_batch_{i}" for i in range(1, 6)])
    test = read(["test_batch"])
    for side, (_, labels) in (("training", train), ("test", test)):
        missing = [CLASSES[k] for k in range(len(CLASSES)) if not bool((labels == k).any())]
        if missing:
            raise DataError(
                f"the {side} batches in {folder} have no image of {', '.join(missing)}; "
                f"CIFAR-10 has ten classes: re-download it (data.download=true)"
            )
    return *train, *test


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(":") if lines else type(error).__name__


def _decode(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 (OSError, Pillow's SyntaxError/ValueError for a damaged file: one line)
        raise DataError(f"cannot decode image {name} ({_first_line(e)}); remove or replace it") from None
    if array.shape != (32, 32, 3):
        raise DataError(f"image {name} is {array.shape[1]}x{array.shape[0]}, not 32x32; this is not CIFAR-10")
    return array.transpose(2, 0, 1)


def _stack(items: dict[str, list[tuple[str, bytes]]], where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """items: class name -> [(file name, bytes)]; sorted by class index, then file name."""
    check_classes({name: len(files) for name, files in items.items()}, where)
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        for file_name, data in sorted(items.get(name, [])):
            images.append(_decode(data, f"{where}/{name}/{file_name}"))
            labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)


def _archive_error(path: Path, e: Exception) -> DataError:
    what = "not a tar archive, or a damaged one" if isinstance(e, tarfile.ReadError) else _first_line(e)
    return DataError(
        f"cannot read archive {path} ({what}); check the file (a download cut short?) or unpack it and give the folder"
    )


def check_classes(counts: dict[str, int], where: str) -> None:
    """counts: class folder name -> its number of images; CIFAR-10's ten, each with images, or DataError."""
    unknown = sorted(set(counts) - set(CLASSES))
    if unknown or not counts:
        raise DataError(f"{where} has class folders {sorted(counts)}; expected CIFAR-10's {', '.join(CLASSES)}")
    empty = [name for name in CLASSES if not counts.get(name)]
    if empty:  # a 9-class set on a 10-way head would report its error as CIFAR-10's
        raise DataError(
            f"{where} has no images of {', '.join(empty)}: CIFAR-10 has ten classes on both sides; "
            f"give the whole data set (folders {', '.join(CLASSES)}, each with images)"
        )


def _read_folders(root: Path) -> tuple[torch.Tensor, ...]:
    out: list[torch.Tensor] = []
    for split in ("train", "test"):
        items: dict[str, list[tuple[str, bytes]]] = {}
        try:
            for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
                files = [p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
                items[class_dir.name] = [(p.name, p.read_bytes()) for p in files]
        except OSError as e:
            raise DataError(
                f"cannot read {e.filename or root / split} ({e.strerror or _first_line(e)}); "
                f"make the data readable (chmod), or give another data.root"
            ) from None
        out += _stack(items, str(root / split))
    return tuple(out)


def _archive_images(tar: tarfile.TarFile):
    """(member, split, class name, file name) of each image under [top/]train|test/<class>/ in the archive; a
    DataError for an archive holding two such data sets (a/train/..., b/train/...: read as one, each image twice)."""
    tops: set[tuple[str, ...]] = set()
    for member in tar:
        parts = Path(member.name).parts
        if member.isfile() and len(parts) >= 3 and parts[-1].lower().endswith(IMAGE_SUFFIXES):
            if parts[-3] in ("train", "test"):  # an optional top folder: [top/]split/class/file
                tops.add(parts[:-3])
                if len(tops) > 1:
                    first, second = ("/".join(top) or "." for top in sorted(tops))
                    raise DataError(
                        f"archive {tar.name} holds train/ and test/ under both {first}/ and {second}/: two data "
                        f"sets, not one; give an archive of one (or unpack it and give its folder)"
                    )
                yield member, *parts[-3:]


def _read_archive(path: Path) -> tuple[torch.Tensor, ...]:
    by_split: dict[str, dict[str, list[tuple[str, bytes]]]] = {"train": {}, "test": {}}
    try:
        with tarfile.open(path) as tar:
            for member, split, class_name, file_name in _archive_images(tar):
                by_split[split].setdefault(class_name, []).append((file_name, tar.extractfile(member).read()))
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 (TarError, OSError, EOFError, lzma/zlib errors mid-stream: one line)
        raise _archive_error(path, e) from None
    return (*_stack(by_split["train"], f"{path}:train"), *_stack(by_split["test"], f"{path}:test"))


def jpeg_quality(data: bytes) -> int | None:
    """The IJG quality whose standard luminance table matches this JPEG's, if any."""
    from PIL import Image

    base = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55]  # standard table, first two rows
    with Image.open(io.BytesIO(data)) as image:
        tables = getattr(image, "quantization", None) or {}
    if 0 not in tables:
        return None
    first_rows = list(tables[0])[:16]  # Pillow gives tables in natural (row-major) order
    for quality in range(1, 101):
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        if first_rows == [min(max((q * scale + 50) // 100, 1), 255) for q in base]:
            return quality
    return None


def _source_label(root: Path, layout: str) -> str:
    """'CIFAR-10', or 'CIFAR-10 (JPEG q75 copy)' for a lossy copy, so figures say what they show."""
    sample: bytes | None = None
    if layout == "folders":
        first = next((p for p in sorted((root / "test").rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg")), None)
        sample = first.read_bytes() if first else None
    elif layout == "archive":
        with tarfile.open(root) as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg")):
                    sample = tar.extractfile(member).read()
                    break
    if sample is None:
        return "CIFAR-10"
    quality = jpeg_quality(sample)
    return f"CIFAR-10 (JPEG q{quality} copy)" if quality else "CIFAR-10 (JPEG copy)"


def check_counts(data: Cifar10, subset: str | None, root) -> None:
    """CIFAR-10 is 5,000 training and 1,000 test images per class (the decoders check 32x32 RGB and ten
    classes); anything else is refused unless data.subset names it a deliberate subset."""
    counts = [
        torch.bincount(labels, minlength=len(CLASSES)).tolist() for labels in (data.train_labels, data.test_labels)
    ]
    _check_per_class(*counts, subset, root)


def _check_per_class(train: list[int], test: list[int], subset: str | None, root) -> None:
    """train, test: images per class, in CLASSES order."""
    if subset is not None or (train == [TRAIN_PER_CLASS] * 10 and test == [TEST_PER_CLASS] * 10):
        return
    raise DataError(
        f"data.root={root} holds {sum(train)} training and {sum(test)} test images "
        f"(per class: {_counts_text(train)} and {_counts_text(test)}), not CIFAR-10's "
        f"{TRAIN_PER_CLASS} and {TEST_PER_CLASS} of each class; give the whole data set, or name a deliberate "
        f"subset with data.subset=<name>"
    )


def survey(root: str | os.PathLike, subset: str | None = None) -> None:
    """What loading would refuse, found without decoding an image (the dry run's check): the class folders and
    the images per class on both sides, from the file names (folders, archives) or the labels (batches).
    Nothing to say where there is no data (config.py says that) or the data is fine; DataError otherwise."""
    root = Path(root).expanduser()
    layout = detect_layout(root)
    if layout is None:
        return
    if layout == "batches":  # the pickles are read whole, but nothing is decoded
        _, train_labels, _, test_labels = _read_batches(root)
        counts = [torch.bincount(y, minlength=len(CLASSES)).tolist() for y in (train_labels, test_labels)]
        return _check_per_class(*counts, subset, root)
    names: dict[str, dict[str, int]] = {"train": {}, "test": {}}
    try:
        if layout == "folders":
            for split, classes in names.items():
                for class_dir in (p for p in (root / split).iterdir() if p.is_dir()):
                    classes[class_dir.name] = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in class_dir.iterdir())
        else:
            with tarfile.open(root) as tar:
                for _, split, class_name, _ in _archive_images(tar):
                    names[split][class_name] = names[split].get(class_name, 0) + 1
    except OSError as e:
        raise DataError(
            f"cannot read {e.filename or root} ({e.strerror or _first_line(e)}); give a readable data.root"
        ) from None
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 (a damaged archive: as _read_archive says it)
        raise _archive_error(root, e) from None
    where = (
        {"train": f"{root}:train", "test": f"{root}:test"} if layout == "archive" else {s: str(root / s) for s in names}
    )
    for split, classes in names.items():
        check_classes(classes, where[split])
    _check_per_class(*([names[split][c] for c in CLASSES] for split in ("train", "test")), subset, root)


def _counts_text(counts: list[int]) -> str:
    return str(counts[0]) if len(set(counts)) == 1 else f"{min(counts)} to {max(counts)}"


def data_fingerprint(data: Cifar10) -> str:
    """What the images and labels are, whatever folder or layout they came from: a resume compares it
    with the one its run started on (train.py), so a run never mixes two data sets."""
    h = hashlib.sha256()
    for tensor in (data.train_images, data.train_labels, data.test_images, data.test_labels):
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _fingerprint(root: Path, layout: str) -> str:
    """Identifies the source cheaply: path, and the names, sizes and times of its files."""
    h = hashlib.sha1(f"{root.resolve()}|{layout}".encode())
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for p in paths:
        stat = p.stat()
        h.update(f"{p.relative_to(root) if p != root else p.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def source_key(root: str | os.PathLike) -> dict:
    """What a data root holds, for the keys of numbers computed from it (Figure 7's, the gradients'): its name
    and the SHA-256 of its contents (a file's bytes; a folder's files, names and bytes), wherever it lies, so
    that numbers cached beside committed runs hold on any machine and a copy replaced at the same path is
    noticed. {"name", "sha256": None} where nothing is at `root` (see `same_source`)."""
    root = Path(root).expanduser()
    digest = None
    if root.exists():
        digest = _contents_sha256(str(root.resolve()), _fingerprint(root, "file" if root.is_file() else "folder"))
    return {"name": root.name, "sha256": digest}


@functools.lru_cache(maxsize=8)
def _contents_sha256(resolved: str, stamp: str) -> str:
    """`stamp` (the files' names, sizes and times) makes a changed source a new entry of this per-process cache."""
    root, h = Path(resolved), hashlib.sha256()
    for p in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
        if p != root:
            h.update(f"{p.relative_to(root).as_posix()}\0".encode())
        with open(p, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def same_source(cached, current: dict) -> bool:
    """Whether numbers cached from the source `cached` hold for `current` (both `source_key`s): the same contents;
    where the data is not at hand (no digest), a source of the same name: the numbers cannot be computed again,
    and the cache was computed from the data the run named (a report of committed runs on a machine without it)."""
    if not isinstance(cached, dict) or not isinstance(cached.get("sha256"), str):
        return False
    if current["sha256"] is None:
        return cached.get("name") == current["name"]
    return cached["sha256"] == current["sha256"]


def load_cifar10(
    root: str | os.PathLike | None, download: bool = False, cache_dir: str | os.PathLike | None = None
) -> Cifar10:
    """Read CIFAR-10 from `root` (any layout above), decoding once and caching as uint8 tensors."""
    if root is None:
        raise DataError(missing_data_message(Path("<unset>")))
    root = Path(root).expanduser()
    layout = detect_layout(root)
    if layout is None and download:
        download_cifar10(root)
        layout = detect_layout(root)
    if layout is None:
        raise DataError(missing_data_message(root))

    cache_file = None
    if cache_dir:  # None or "": no cache (never Path(""), the current directory)
        try:
            cache_file = Path(cache_dir).expanduser() / f"cifar10-{_fingerprint(root, layout)}.pt"
            if cache_file.is_file():
                return Cifar10(**torch.load(cache_file, weights_only=True))
        except Exception:  # noqa: BLE001 (a torn or stale cache is rebuilt, never trusted; unreadable data: the reader says)
            pass

    reader = {"batches": _read_batches, "folders": _read_folders, "archive": _read_archive}[layout]
    train_images, train_labels, test_images, test_labels = reader(root)
    source = "CIFAR-10" if layout == "batches" else _source_label(root, layout)
    data = Cifar10(train_images, train_labels, test_images, test_labels, source)
    if cache_file is not None:
        _write_cache(data, cache_file)
    return data


_CACHE_REFUSED: set[Path] = set()  # cache folders that could not be written: said once per process


def _write_cache(data: Cifar10, cache_file: Path) -> None:
    """Cache the decoded tensors; a folder that cannot take them (read-only, a file, /proc, a full disk) only
    costs the next run its decoding: the run goes on without a cache, and says so once."""
    tmp = cache_file.with_name(f".{cache_file.name}.tmp{os.getpid()}")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data.__dict__, tmp)
        os.replace(tmp, cache_file)  # atomic: a concurrent reader sees the old file or the whole new one
    except Exception as e:  # noqa: BLE001 (OSError, or torch's RuntimeError wrapping one)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if cache_file.parent not in _CACHE_REFUSED:
            _CACHE_REFUSED.add(cache_file.parent)
            print(
                f"[no cache] cannot write the decoded-data cache into {cache_file.parent} ({_first_line(e)}); "
                f"going on without it (set data.cache_dir= to a writable folder, or data.cache_dir=null)",
                flush=True,
            )


def split_cifar10(data: Cifar10, val_size: int = 5000, split_seed: int = 0) -> Split:
    """Hold out `val_size` training images (a fixed random choice); 0 trains on all 50k."""
    n = len(data.train_labels)
    if not 0 <= val_size < n:
        raise DataError(f"data.val_size={val_size} must be between 0 and {n - 1}; the paper uses 5000")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = order[:val_size].sort().values, order[val_size:].sort().values
    train_images = data.train_images[train_idx]
    mean_image = train_images.float().mean(0) / 255  # the per-pixel mean of what is trained on
    return Split(
        train_images,
        data.train_labels[train_idx],
        data.train_images[val_idx],
        data.train_labels[val_idx],
        data.test_images,
        data.test_labels,
        mean_image,
        data.source,
    )


# --------------------------------------------------------------------------- batches


def normalize(images: torch.Tensor, mean_image: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """uint8 NCHW -> float in [0, 1] minus the per-pixel mean image."""
    x = images.float().div_(255).sub_(mean_image)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment(
    images: torch.Tensor, mean_image: torch.Tensor, generator: torch.Generator | None = None, channels_last: bool = True
) -> torch.Tensor:
    """The paper's augmentation for a whole uint8 batch at once, on its device.

    Pad 4 zeros on each side, take a random 32x32 crop (offsets uniform over 9x9),
    flip horizontally with probability 1/2. Padding is applied after mean
    subtraction, so the padded border is zero in the network's input.
    Crop and flip are one gather: the columns read are reversed for flipped images.
    """
    b, _, h, w = images.shape
    x = torch.nn.functional.pad(normalize(images, mean_image, channels_last=False), (PAD, PAD, PAD, PAD))
    dev = images.device
    # Drawn on the CPU whatever the device (a few hundred numbers), then moved: CPU and CUDA generators
    # draw differently for one seed, and a run checkpointed on one and resumed on the other must see the
    # batches it would have. non_blocking: a plain copy would be a synchronising one on CUDA.
    dy = torch.randint(0, 2 * PAD + 1, (b,), generator=generator).to(dev, non_blocking=True)
    dx = torch.randint(0, 2 * PAD + 1, (b,), generator=generator).to(dev, non_blocking=True)
    flip = (torch.rand(b, generator=generator) < 0.5).to(dev, non_blocking=True)
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = dy[:, None] + ar_h  # [B, H]
    cols = dx[:, None] + torch.where(flip[:, None], ar_w.flip(0), ar_w)  # [B, W]
    batch_idx = torch.arange(b, device=dev)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch_idx, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    out = out.permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels_last for free
    return out if channels_last else out.contiguous()


def _generator(*seed_parts: int) -> torch.Generator:
    """A CPU generator seeded by `seed_parts`: every device draws the same batches for one seed."""
    seed = int.from_bytes(hashlib.sha256(repr(seed_parts).encode()).digest()[:8], "little") >> 1
    return torch.Generator().manual_seed(seed)


class TrainBatches:
    """An endless stream of augmented training batches, a pure function of (seed, step).

    The data lives on the training device as uint8. Each epoch is a fresh permutation
    (drop_last, so every batch has the same shape), and batch k is augmented with a
    generator seeded by (seed, k): a resumed run sees exactly the batches it would have, on any device
    (the draws are made on the CPU).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean_image: torch.Tensor,
        batch_size: int,
        seed: int,
        start_step: Callable[[], int] = lambda: 0,
        device: torch.device | str = "cpu",
        channels_last: bool = True,
    ):
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.mean_image = mean_image.to(self.device)
        if batch_size > len(labels):
            raise DataError(f"batch_size={batch_size} is larger than the {len(labels)} training images; lower it")
        self.batch_size, self.seed, self.start_step, self.channels_last = batch_size, seed, start_step, channels_last
        self.steps_per_epoch = len(labels) // batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        step, epoch, order = self.start_step(), None, None
        while True:
            e, i = divmod(step, self.steps_per_epoch)
            if e != epoch:
                epoch = e
                order = torch.randperm(len(self.labels), generator=_generator(self.seed, e))
                order = order.to(self.device, non_blocking=True)
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            images = augment(self.images[idx], self.mean_image, _generator(self.seed, e, i), self.channels_last)
            yield images, self.labels[idx]
            step += 1


class EvalBatches:
    """The un-augmented images of one split in fixed order, normalized on the device."""

    def __init__(self, images, labels, mean_image, batch_size: int, device="cpu", channels_last: bool = True):
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.mean_image, self.batch_size, self.channels_last = mean_image.to(self.device), batch_size, channels_last

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.labels), self.batch_size):
            end = start + self.batch_size
            yield normalize(self.images[start:end], self.mean_image, self.channels_last), self.labels[start:end]
