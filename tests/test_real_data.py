"""ResNet-20 on the real CIFAR-10 (the JPEG q75 copy in ../shared/data), when it is present."""

import tarfile

import pytest
from conftest import SHARED_ARCHIVE, make_spec

from resnet_repro.results import load_runs
from resnet_repro.train import train

pytestmark = pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason=f"{SHARED_ARCHIVE} not present")


def test_resnet20_learns_real_cifar10(tmp_path):
    with tarfile.open(SHARED_ARCHIVE) as tar:
        tar.extractall(tmp_path / "cifar10", filter="data")
    spec = make_spec(
        [
            f"data.root={tmp_path / 'cifar10'}",
            f"out_dir={tmp_path / 'exp'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "arch=resnet",
            "depth=20",
            "steps=300",
            "eval_every=150",
            "trainer.progress_bar=false",
        ]
    )
    assert train(spec) == "done"
    df = load_runs(tmp_path / "exp")
    final = df[df.step == 300].set_index("split").error
    print(f"ResNet-20 after 300 steps on the JPEG copy: {final.to_dict()}")
    assert len(df[(df.split == "test")]) == 2
    assert final["test"] < 0.70  # chance is 0.90
    assert final["val"] < 0.70 and final["train"] < 0.80
