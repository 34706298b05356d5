import io
import tarfile

import pytest
import torch
from conftest import TEST_PER_CLASS, TRAIN_PER_CLASS, tiny_images, write_folders
from PIL import Image

from resnet_repro.data import (
    PAD,
    DataError,
    EvalBatches,
    TrainBatches,
    augment,
    detect_layout,
    jpeg_quality,
    load_cifar10,
    normalize,
    split_cifar10,
)

N_TRAIN, N_TEST = 10 * TRAIN_PER_CLASS, 10 * TEST_PER_CLASS


def test_both_layouts_read_the_same_images(tiny_batches, tiny_folders):
    a, b = load_cifar10(tiny_batches), load_cifar10(tiny_folders)
    assert detect_layout(tiny_batches) == "batches" and detect_layout(tiny_folders) == "folders"
    assert a.train_images.shape == (N_TRAIN, 3, 32, 32) and a.train_images.dtype == torch.uint8
    assert a.test_images.shape == (N_TEST, 3, 32, 32)
    # Same images in the same order (sorted by class, lossless PNG): the two readers agree exactly.
    expected, labels = tiny_images(TRAIN_PER_CLASS, seed=0)
    assert torch.equal(a.train_images, torch.from_numpy(expected))
    assert torch.equal(b.train_images, a.train_images) and torch.equal(b.train_labels, a.train_labels)
    assert torch.equal(a.train_labels, torch.from_numpy(labels))
    assert a.source == b.source == "CIFAR-10"


def test_archive_layout_and_jpeg_label(tmp_path):
    folders = write_folders(tmp_path / "jpg", fmt="jpg")
    archive = tmp_path / "copy.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(folders / "train", arcname="top/train")
        tar.add(folders / "test", arcname="top/test")
    from_archive, from_folder = load_cifar10(archive), load_cifar10(folders)
    assert torch.equal(from_archive.train_images, from_folder.train_images)
    assert from_archive.source == "CIFAR-10 (JPEG q75 copy)"  # Pillow's default quality


def test_jpeg_quality_estimate():
    for quality in (50, 75, 90):
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (10, 200, 30)).save(buf, "JPEG", quality=quality)
        assert jpeg_quality(buf.getvalue()) == quality


def test_cache_makes_second_load_identical(tiny_folders, tmp_path):
    first = load_cifar10(tiny_folders, cache_dir=tmp_path)
    cached = list(tmp_path.glob("cifar10-*.pt"))
    assert len(cached) == 1
    second = load_cifar10(tiny_folders, cache_dir=tmp_path)
    assert torch.equal(first.train_images, second.train_images) and second.source == first.source
    cached[0].write_bytes(b"torn")  # a broken cache is rebuilt, not trusted
    assert torch.equal(load_cifar10(tiny_folders, cache_dir=tmp_path).test_images, first.test_images)


def test_missing_data_names_layouts_and_download(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*train/<class>.*data.download=true"):
        load_cifar10(tmp_path / "nowhere")


def test_wrong_class_folders_are_named(tmp_path):
    (tmp_path / "train" / "dogs").mkdir(parents=True)
    (tmp_path / "test" / "dogs").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "train" / "dogs" / "0.png")
    with pytest.raises(DataError, match="expected CIFAR-10's airplane"):
        load_cifar10(tmp_path)


def test_split_sizes_are_fixed_and_disjoint(tiny_batches):
    data = load_cifar10(tiny_batches)
    split = split_cifar10(data, val_size=20, split_seed=0)
    assert len(split.train_labels) == N_TRAIN - 20 and len(split.val_labels) == 20 and len(split.test_labels) == N_TEST
    again = split_cifar10(data, val_size=20, split_seed=0)
    assert torch.equal(split.val_images, again.val_images)
    rows = {bytes(x.flatten().tolist()) for x in split.train_images}
    assert not any(bytes(x.flatten().tolist()) in rows for x in split.val_images)
    assert len(split_cifar10(data, val_size=0).train_labels) == N_TRAIN


def test_mean_image_is_the_per_pixel_mean_of_the_training_split(tiny_batches):
    split = split_cifar10(load_cifar10(tiny_batches), val_size=20)
    assert split.mean_image.shape == (3, 32, 32)
    assert torch.allclose(split.mean_image, split.train_images.double().mean(0).float() / 255, atol=1e-6)
    x = normalize(split.train_images, split.mean_image)
    assert x.mean(0).abs().max() < 1e-5  # mean subtraction centres every pixel


def test_augment_keeps_shape_label_and_content(tiny_batches):
    split = split_cifar10(load_cifar10(tiny_batches), val_size=20)
    batches = TrainBatches(split.train_images, split.train_labels, split.mean_image, batch_size=16, seed=0)
    images, labels = next(iter(batches))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32 and labels.shape == (16,)
    assert images.is_contiguous(memory_format=torch.channels_last)
    # every augmented image is a crop (maybe flipped) of its own padded source image
    labels_by_row = {bytes(x.flatten().tolist()): int(y) for x, y in zip(split.train_images, split.train_labels)}
    # recover the source by regenerating the order: the stream is a pure function of (seed, step)
    again, again_labels = next(iter(TrainBatches(split.train_images, split.train_labels, split.mean_image, 16, seed=0)))
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    assert set(labels.tolist()) <= set(labels_by_row.values())


def test_augment_is_a_padded_crop_with_optional_flip():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    mean = torch.full((3, 32, 32), 0.5)
    out = augment(images, mean, torch.Generator().manual_seed(0), channels_last=False)
    padded = torch.nn.functional.pad(images.float() / 255 - mean, (PAD,) * 4)
    for i in range(len(images)):
        found = False
        for dy in range(2 * PAD + 1):
            for dx in range(2 * PAD + 1):
                crop = padded[i, :, dy : dy + 32, dx : dx + 32]
                if torch.equal(out[i], crop) or torch.equal(out[i], crop.flip(2)):
                    found = True
        assert found, f"image {i} is not a crop of its padded source"


def test_stream_resumes_at_any_step(tiny_batches):
    split = split_cifar10(load_cifar10(tiny_batches), val_size=20)
    args = (split.train_images, split.train_labels, split.mean_image, 16)
    stream = iter(TrainBatches(*args, seed=3))
    first_ten = [next(stream) for _ in range(10)]  # crosses an epoch boundary (100 // 16 = 6 per epoch)
    resumed = iter(TrainBatches(*args, seed=3, start_step=lambda: 7))
    for k in range(7, 10):
        images, labels = next(resumed)
        assert torch.equal(images, first_ten[k][0]) and torch.equal(labels, first_ten[k][1])
    other_seed = next(iter(TrainBatches(*args, seed=4)))
    assert not torch.equal(other_seed[0], first_ten[0][0])


def test_epoch_sees_every_image_once(tiny_batches):
    split = split_cifar10(load_cifar10(tiny_batches), val_size=20)
    stream = iter(TrainBatches(split.train_images, split.train_labels, split.mean_image, 20, seed=0))
    labels = torch.cat([next(stream)[1] for _ in range(5)])  # 100 images, 5 batches of 20
    assert torch.equal(labels.sort().values, split.train_labels.sort().values)


def test_eval_batches_cover_the_split_in_order(tiny_batches):
    split = split_cifar10(load_cifar10(tiny_batches), val_size=20)
    batches = EvalBatches(split.test_images, split.test_labels, split.mean_image, batch_size=16)
    assert len(batches) == 3
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels, split.test_labels)
