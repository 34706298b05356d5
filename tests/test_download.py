"""data.download=auto: the card's command works as typed. No data at the default data.root: CIFAR-10 is downloaded
there (torchvision's download, faked here: this machine may be offline, and a test never fetches 170 MB); offline,
one line naming the three ways to give the data; a sweep says it once, not once per run."""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import pytest
import torchvision
from conftest import tiny_overrides
from test_bad_inputs import run_cli

from resnet_repro.data import DataError, load_cifar10

THREE_WAYS = ("data.root=", "CIFAR10_ROOT", "data.download=true")


def offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -2] Name or service not known")


@pytest.fixture
def fake_download(monkeypatch, tiny_batches):
    """torchvision's CIFAR10(root, download=True) writing the tiny data set into root; counts its calls."""
    calls = []

    def download(root, train=True, download=False, **kwargs):
        assert download, "only a download is faked"
        calls.append(Path(root))
        shutil.copytree(tiny_batches / "cifar-10-batches-py", Path(root) / "cifar-10-batches-py")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", download)
    return calls


@pytest.fixture
def no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be downloaded here")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", refuse)


@pytest.fixture
def default_root(monkeypatch, tmp_path) -> Path:
    """A fresh clone's situation: data.root is the default (data/cifar10 of the current folder), CIFAR10_ROOT unset."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CIFAR10_ROOT", raising=False)
    return tmp_path / "data" / "cifar10"


def without_root(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.startswith("data.root=")]


def test_offline_download_is_one_line_naming_the_three_ways_and_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    root = tmp_path / "new" / "cifar10"
    with pytest.raises(DataError) as caught:
        load_cifar10(root, download=True)
    message = str(caught.value)
    assert "\n" not in message and "URLError" in message and all(way in message for way in THREE_WAYS)
    assert not (tmp_path / "new").exists()  # the folders made for the download are gone again


def test_download_fills_data_root(fake_download, tmp_path):
    data = load_cifar10(tmp_path / "cifar10", download=True)
    assert fake_download == [tmp_path / "cifar10"] and len(data.test_labels) == 40
    assert not (tmp_path / "cifar10" / ".download.lock").exists()


def test_the_card_sweep_downloads_once_into_the_default_root(fake_download, default_root, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["-m", "arch=plain,resnet", "depth=8", *without_root(tiny_overrides(tmp_path, out)), "report=false"]
    status, stdout, err = run_cli(argv, capsys)
    assert status == 0, err[-3000:]
    assert fake_download == [Path("data/cifar10")]  # once for the sweep, into the default place
    assert (default_root / "cifar-10-batches-py").is_dir() and "2 runs: 2 done" in stdout


def test_the_card_sweep_offline_says_it_once(monkeypatch, default_root, tmp_path, capsys):
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    out = tmp_path / "out"
    argv = ["-m", "arch=plain,resnet", "depth=8,20", *without_root(tiny_overrides(tmp_path, out))]
    status, stdout, err = run_cli(argv, capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no CIFAR-10 found at data.root=data/cifar10")
    assert all(way in lines[0] for way in THREE_WAYS) and "Traceback" not in stdout + err
    assert not out.exists() and not (tmp_path / "data").exists()  # no sweep folder, no report, no empty data folder


def test_a_root_a_user_gave_is_not_downloaded_into(no_download, tmp_path, capsys):
    """auto downloads into the default place only: a path typed by hand that holds nothing is a slip."""
    argv = [*tiny_overrides(tmp_path / "nowhere", tmp_path / "out")]
    status, _, err = run_cli(argv, capsys)
    assert status == 2 and err.count("\n") == 1 and "no CIFAR-10 found at data.root=" in err
    assert all(way in err for way in THREE_WAYS)


def test_download_false_never_downloads(no_download, default_root, tmp_path, capsys):
    argv = ["-m", "arch=plain,resnet", *without_root(tiny_overrides(tmp_path, tmp_path / "out")), "data.download=false"]
    status, _, err = run_cli(argv, capsys)
    assert status == 2 and err.count("\n") == 1 and "no CIFAR-10 found" in err


def test_a_refusal_shared_by_every_run_is_said_once(tiny_batches, tmp_path, capsys):
    """A setting every run of a sweep refuses (found only once the data is read): one line on stderr, and the
    summary names the runs beside the reason once."""
    argv = ["-m", "arch=plain,resnet", "depth=8", *tiny_overrides(tiny_batches, tmp_path / "out"), "batch_size=100000"]
    status, stdout, err = run_cli(argv, capsys)
    assert status == 1
    assert err.count("batch_size=100000 is larger") == 1, err
    assert stdout.count("batch_size=100000 is larger") == 1 and "2 runs (plain-8/seed0, resnet-8/seed0)" in stdout
