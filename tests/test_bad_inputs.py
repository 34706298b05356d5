"""Every bad input and fault tried, in one list each: what is given, the exit status, and a fragment of the
one line that says what is wrong and the fix (issue #15, item 8).

Most cases run in this process through `resnet_repro.cli.main`, the command `python run.py` runs (argv
patched, stderr captured); a handful need a process of their own (a run that trains, a signal, what a
fresh interpreter prints) and go through `python run.py`. Each entry is one line of data; `{data}` is a
tiny CIFAR-10 folder, `{tmp}` the test's own folder. The damage done to run directories (on resume and on
reading) is a function per entry.
"""

# ruff: noqa: E501 (the lists below are data: one entry a line)
from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
import signal
import socket
import sys
import tarfile
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
import torch
from conftest import make_spec, tiny_overrides, write_folders
from filelock import FileLock
from PIL import Image
from test_report import fake_run
from test_resilience import (  # noqa: F401 (one_thread: one thread per process, as in the subprocesses)
    RESUMABLE,
    Crash,
    crash_after_checkpoint,
    metrics,
    one_thread,
    run_py,
    start_run_py,
    wait_for,
)

from resnet_repro import cli, report
from resnet_repro.config import RunSpec
from resnet_repro.runs import RunDir, run_settings
from resnet_repro.train import train

# --------------------------------------------------------------------------- settings, refused before any work

# (arguments, exit status, fragment of the one line on stderr); the run's own arguments are tiny_overrides.
# fmt: off
SETTINGS = [
    # the net
    ("depth=21", 2, "depth=21 is not 6n+2 with n >= 1; use one of 8, 14, 20, 26, 32, ... (the paper's: 20, 32, 44, 56, 110, 1202)"),
    ("depth=abc", 2, "depth=abc is not 6n+2 with n >= 1; use one of 8, 14, 20"),
    ("arch=vgg", 2, "arch='vgg' is unknown; use arch=plain or arch=resnet"),
    ("shortcut=C", 2, "shortcut='C' is unknown; use shortcut=A or shortcut=B"),
    # the schedule
    ("steps=0", 2, "steps=0 must be a positive whole number"),
    ("steps=-5", 2, "steps=-5 must be a positive whole number"),
    ("batch_size=0", 2, "batch_size=0 must be a positive whole number"),
    ("batch_size=-1", 2, "batch_size=-1 must be a positive whole number"),
    ("batch_size=1.5", 2, "batch_size=1.5 must be a positive whole number"),
    ("eval_every=100", 2, "eval_every=100 is larger than steps=8; set eval_every <= steps"),
    ("log_every=8", 2, "log_every=8 is larger than eval_every=4; set log_every <= eval_every"),
    ("seed=abc", 2, "seed=abc must be a whole number from 0 to 4294967295 (default: seed=0)"),
    ("seed=-1", 2, "seed=-1 must be a whole number from 0 to 4294967295"),
    ("seed=99999999999", 2, "seed=99999999999 must be a whole number from 0 to 4294967295"),
    # the optimizer and the warm-up
    ("optim.lr=-0.1", 2, "optim.lr=-0.1 must be a number > 0 (default: optim.lr=0.1)"),
    ("optim.lr=nan", 2, "optim.lr=nan must be a number > 0"),
    ("optim.lr=inf", 2, "optim.lr=inf must be a number > 0"),
    ("optim.lr=abc", 2, "optim.lr=abc must be a number > 0"),
    ("optim.momentum=1.5", 2, "optim.momentum=1.5 must be a number >= 0 and < 1"),
    ("optim=5", 2, "optim is a group of settings (optim.lr, optim.momentum, optim.weight_decay, optim.lr_milestones, optim.lr_decay), not one; set one of them, e.g. optim.lr=5"),
    ("optim.weight_decay=-1", 2, "optim.weight_decay=-1 must be a number >= 0"),
    ("optim.lr_decay=0", 2, "optim.lr_decay=0 must be a number > 0 and <= 1"),
    ("optim.lr_milestones=[0.5,2]", 2, "optim.lr_milestones=[0.5, 2] must be a list of fractions of steps in (0, 1)"),
    ("optim.lr_milestones=[0.5,1.0]", 2, "must be a list of fractions of steps in (0, 1)"),
    ("optim.lr_milestones=[0.75,0.5]", 2, "optim.lr_milestones=[0.75, 0.5] must increase"),
    ("optim.lr_milestones=[0.5,0.5]", 2, "optim.lr_milestones=[0.5, 0.5] must increase"),
    ("steps=1 eval_every=1", 2, "steps=1 is too short for optim.lr_milestones=[0.5, 0.75]: the lr drops would land on steps 0, 1 of 1"),
    ("steps=3 eval_every=1", 2, "steps=3 is too short for optim.lr_milestones=[0.5, 0.75]: the lr drops would land on steps 2, 2 of 3"),
    ("steps=2 eval_every=1 optim.lr_milestones=[0.1]", 2, "use a longer schedule (e.g. steps=6), or optim.lr_milestones=[]"),
    ("steps=20 eval_every=1000", 2, "eval_every=1000 is larger than steps=20; set eval_every <= steps"),
    ("optim.momentum=-0.1", 2, "optim.momentum=-0.1 must be a number >= 0 and < 1"),
    ("optim.lr_decay=2", 2, "optim.lr_decay=2 must be a number > 0 and <= 1"),
    ("optim.lr_milestones=0.5", 2, "optim.lr_milestones=0.5 must be a list of fractions of steps"),
    ("warmup.enabled=maybe", 2, "warmup.enabled=maybe must be auto, true or false"),
    ("warmup.enabled=1", 2, "warmup.enabled=1 must be auto, true or false"),  # 1 == True in Python, but no rule's value
    ("data.download=0", 2, "data.download=0 must be auto, true or false"),
    ("steps=nan", 2, "steps=nan must be a positive whole number"),
    ("steps=1e3", 2, "steps=1000.0 must be a positive whole number"),
    ("steps=[8]", 2, "steps=[8] must be a positive whole number"),
    ("optim.lr=true", 2, "optim.lr=True must be a number > 0"),
    ("optim.weight_decay=inf", 2, "optim.weight_decay=inf must be a number >= 0"),
    ("optim.lr_milestones=[0.5,nan]", 2, "must be a list of fractions of steps in (0, 1)"),
    ("warmup.until_train_error=nan", 2, "warmup.until_train_error=nan must be a number > 0 and <= 1"),
    ("trainer.snapshots=[1.5]", 2, "trainer.snapshots=[1.5] must be a list of fractions of steps in [0, 1]"),
    ("trainer.snapshots=0.5", 2, "trainer.snapshots=0.5 must be a list of fractions of steps in [0, 1]"),
    ("seed=1.0", 2, "seed=1.0 must be a whole number from 0 to 4294967295"),
    ("depth=[20]", 2, "depth=[20] is not 6n+2 with n >= 1"),
    ("name=", 2, "name= must be one folder name inside out_dir"),
    ("warmup.lr=0", 2, "warmup.lr=0 must be a number > 0"),
    ("warmup.check_every=0", 2, "warmup.check_every=0 must be a positive whole number"),
    ("warmup.until_train_error=80", 2, "warmup.until_train_error=80 must be a number > 0 and <= 1"),
    ("warmup.until_train_error=2", 2, "warmup.until_train_error=2 must be a number > 0 and <= 1"),
    ("warmup.until_train_error=0", 2, "warmup.until_train_error=0 must be a number > 0 and <= 1"),
    ("warmup.until_train_error=-0.5", 2, "warmup.until_train_error=-0.5 must be a number > 0 and <= 1"),
    ("warmup.enabled=true warmup.check_every=50", 2, "warmup.check_every=50 is larger than steps=8: the warm-up would never be checked"),
    ("warmup.enabled=true warmup.lr=0.5", 2, "warmup.lr=0.5 is larger than optim.lr=0.1: a warm-up starts lower"),
    # how it computes
    ("trainer.compile=banana", 2, "trainer.compile=banana is unknown; use auto, true, false"),
    ("trainer.precision=fp8", 2, "trainer.precision=fp8 is unknown; use auto, 32-true (fp32, the paper's) or bf16-mixed"),
    ("trainer.accelerator=tpu", 2, "trainer.accelerator=tpu is unknown; use auto, cpu, cuda"),
    ("trainer.threads=-1", 2, "trainer.threads=-1 must be a positive whole number, or null"),
    ("trainer.keep_freed_memory=maybe", 2, "trainer.keep_freed_memory=maybe is unknown; use auto, true or false"),
    ("trainer.channels_last=maybe", 2, "trainer.channels_last=maybe must be true or false (default: trainer.channels_last=True)"),
    ("trainer.eval_batch_size=0", 2, "trainer.eval_batch_size=0 must be a positive whole number"),
    ("trainer.checkpoint_every=0", 2, "trainer.checkpoint_every=0 must be a positive whole number"),
    ("trainer.progress_bar=loud", 2, "trainer.progress_bar=loud is unknown; use auto, bar, lines or false"),
    ("logger=nope", 2, "Could not find 'logger/nope' Available options in 'logger': csv, mlflow, tensorboard, wandb"),
    ("trainer.logger=tensorboard", 2, "Could not override 'trainer.logger'"),
    ("report=maybe", 2, "report=maybe must be true or false"),
    # the data's settings
    ("data.val_size=-1", 2, "data.val_size=-1 must be a whole number from 0"),
    ("data.download=maybe", 2, "data.download=maybe must be auto, true or false"),
    ("data.root=", 2, "data.root= must be a path to CIFAR-10"),
    ("data.split_seed=-1", 2, "data.split_seed=-1 must be a whole number from 0 to 9223372036854775807"),
    ("data.subset=''", 2, "must be null (full CIFAR-10) or a name for a deliberate subset"),
    ("data.cache_dir=5", 2, "data.cache_dir=5 must be a folder, or null for no cache"),
    ("out_dir=", 2, "out_dir= must be a folder to write runs into"),
    ("trainer.runs_per_gpu=0", 2, "trainer.runs_per_gpu=0 must be a positive whole number"),
    # keys the project does not read: Hydra's message, or ours for an added one, with the nearest key
    ("dept=20", 2, "Could not override 'dept'. Key 'dept' is not in struct; did you mean depth=20?"),
    ("-m dept=20", 2, "Could not override 'dept'. Key 'dept' is not in struct; did you mean depth=20?"),
    ("trainer.precison=32-true", 2, "Could not override 'trainer.precison'. Key 'precison' is not in struct; did you mean trainer.precision=32-true?"),
    ("+dept=20", 2, "dept is not a setting of this project, so it would change nothing; did you mean depth=20?"),
    ("+foo=1", 2, "foo is not a setting of this project"),
    ("+trainer.cuda=true", 2, "trainer.cuda is not a setting of this project"),
    ("experiment=nope", 2, "Could not find 'experiment/nope' Available options in 'experiment': paper, quick, tenth"),
    ("log_every=${nope}", 2, "cannot resolve the config: Interpolation key 'nope' not found; check the ${...} in the overrides"),
    # where the run goes: never outside out_dir (placed in {tmp}/out/exp, so an escape would land in {tmp}/out)
    ("name=../escape", 2, "name=../escape must be one folder name inside out_dir"),
    ("name={tmp}/abs", 2, "/abs must be one folder name inside out_dir"),
    ("name=a/../../b", 2, "name=a/../../b must be one folder name inside out_dir"),
    ("name=..", 2, "name=.. must be one folder name inside out_dir"),
    ("-m name=../escape", 2, "name=../escape must be one folder name inside out_dir"),
    ("-m name=a,b", 2, "a sweep has one folder (out_dir/name), so it cannot sweep over name; run one sweep per name"),
    ("-m name=a,b depth=8,14", 2, "cannot sweep over name"),
    ("-m name=choice(a,b)", 2, "cannot sweep over name"),
    ("-m out_dir={tmp}/a,{tmp}/b", 2, "/b: a sweep has one folder (out_dir/name), so it cannot sweep over out_dir; run one sweep per out_dir"),
    ("run_id=../../x", 2, "is not inside out_dir/name"),
    ("run_dir={tmp}/abs", 2, "is not inside out_dir/name"),
    # the data, read once the settings pass: refused before the run's directory is made
    ("data.root={tmp}/nowhere", 2, "no CIFAR-10 found at data.root="),
    ("data.root={truncated_archive}", 2, "cannot read archive"),
    ("data.root={truncated_batch}", 2, "cannot read CIFAR-10 batch"),
    ("data.root={kittens}", 2, "expected CIFAR-10's airplane"),
    ("batch_size=100000", 2, "batch_size=100000 is larger than the 100 training images; lower it"),
    ("data.val_size=100000", 2, "data.val_size=100000 must be between 0 and 119"),
    # ... and what it claims to be: CIFAR-10's ten classes on both sides, its counts, readable 32x32 images
    ("data.root={no_truck_test}", 2, "test has no images of truck: CIFAR-10 has ten classes on both sides"),
    ("data.root={no_cat_train}", 2, "train has no images of cat: CIFAR-10 has ten classes on both sides"),
    ("data.root={empty_classes}", 2, "has no images of airplane, automobile, bird"),
    ("data.root={garbage_archive}", 2, "cannot read archive"),
    ("data.root={garbage_archive}", 2, "(not a tar archive, or a damaged one); check the file"),
    ("data.root={corrupt_image}", 2, "cannot decode image"),
    ("data.root={small_image}", 2, "is 16x16, not 32x32; this is not CIFAR-10"),
    ("data.root={missing_label}", 2, "have no image of truck; CIFAR-10 has ten classes"),
    # batches that unpickle but are not CIFAR-10's rows: cast as they are, they would be trained on (issue #25)
    ("data.root={float_batches}", 2, "holds float32 data of shape (24, 3072), not 32x32 RGB images (uint8 rows of 3072 values)"),
    ("data.root={short_rows}", 2, "holds uint8 data of shape (24, 1024), not 32x32 RGB images"),
    ("data.root={text_labels}", 2, "has labels that are not whole numbers (e.g. '0')"),
    ("data.root={fractional_labels}", 2, "has labels that are not whole numbers (e.g. 0.5)"),
    ("data.root={two_sets_archive}", 2, "holds train/ and test/ under both a/ and b/: two data sets, not one"),
    ("data.root={extra_class}", 2, "has class folders ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'kitten', 'ship', 'truck']"),
    ("data.root={big_image}", 2, "is 64x64, not 32x32; this is not CIFAR-10"),
    ("data.root={empty_archive}", 2, "cannot read archive"),
    ("data.subset=null", 2, "holds 120 training and 40 test images (per class: 12 and 4), not CIFAR-10's 5000 and 1000 of each class; give the whole data set, or name a deliberate subset with data.subset=<name>"),
]
# fmt: on


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory, tiny_batches, tiny_folders) -> dict[str, Path]:
    """Data roots that are not CIFAR-10 as the project reads it."""
    root = tmp_path_factory.mktemp("bad_data")
    archive = root / "cifar10.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(tiny_folders, arcname="cifar10")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    batches = root / "truncated" / "cifar-10-batches-py"
    shutil.copytree(tiny_batches / "cifar-10-batches-py", batches)
    (batches / "data_batch_3").write_bytes((batches / "data_batch_3").read_bytes()[:1000])
    for split in ("train", "test"):
        (root / "kittens" / split / "kittens").mkdir(parents=True)
    roots = {"truncated_archive": archive, "truncated_batch": batches.parent, "kittens": root / "kittens"}

    def copy(name: str) -> Path:
        roots[name] = root / name
        return shutil.copytree(tiny_folders, root / name)

    shutil.rmtree(copy("no_truck_test") / "test" / "truck")
    shutil.rmtree(copy("no_cat_train") / "train" / "cat")
    for image in copy("empty_classes").rglob("*.png"):
        image.unlink()
    next((copy("corrupt_image") / "train" / "dog").iterdir()).write_bytes(b"\x89PNG not really")
    Image.new("RGB", (16, 16)).save(next((copy("small_image") / "test" / "cat").iterdir()))
    roots["garbage_archive"] = root / "garbage.tar.xz"
    roots["garbage_archive"].write_bytes(b"this is not an archive\n" * 100)
    missing = root / "missing_label" / "cifar-10-batches-py"
    shutil.copytree(tiny_batches / "cifar-10-batches-py", missing)
    test = pickle.loads((missing / "test_batch").read_bytes())
    keep = [i for i, label in enumerate(test["labels"]) if label != 9]
    test = {"data": test["data"][keep], "labels": [test["labels"][i] for i in keep]}
    (missing / "test_batch").write_bytes(pickle.dumps(test))
    roots["missing_label"] = missing.parent

    def batches(name: str, change) -> None:
        folder = shutil.copytree(tiny_batches / "cifar-10-batches-py", root / name / "cifar-10-batches-py")
        for path in folder.iterdir():
            batch = pickle.loads(path.read_bytes())
            change(batch)
            path.write_bytes(pickle.dumps(batch))
        roots[name] = folder.parent

    batches("float_batches", lambda b: b.update(data=b["data"].astype("float32") / 255))  # black images, cast
    batches("short_rows", lambda b: b.update(data=b["data"][:, :1024]))
    batches("text_labels", lambda b: b.update(labels=[str(y) for y in b["labels"]]))
    batches("fractional_labels", lambda b: b.update(labels=[y + 0.5 for y in b["labels"]]))
    roots["two_sets_archive"] = root / "two_sets.tar.xz"
    with tarfile.open(roots["two_sets_archive"], "w:xz") as tar:
        tar.add(tiny_folders, arcname="a")
        tar.add(tiny_folders, arcname="b")
    shutil.copytree(copy("extra_class") / "train" / "cat", root / "extra_class" / "train" / "kitten")
    Image.new("RGB", (64, 64)).save(next((copy("big_image") / "train" / "dog").iterdir()))
    roots["empty_archive"] = root / "empty.tar.xz"
    roots["empty_archive"].write_bytes(b"")
    return roots


def command_line(args: str, run_args: list[str], **places) -> list[str]:
    """`run_args`, then `args` (the case's: they win), with the places filled in; flags (-m) first."""
    for name, place in places.items():
        args = args.replace(f"{{{name}}}", str(place))
    case = shlex.split(args)
    return [a for a in case if a.startswith("-")] + run_args + [a for a in case if not a.startswith("-")]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """`python run.py *argv`, in this process: (exit status, stdout, stderr)."""
    with mock.patch.object(sys, "argv", ["run.py", *argv]), mock.patch.dict("os.environ"):
        try:
            cli.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-3000:]
    return lines[0]


@pytest.mark.parametrize("args, code, says", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_a_bad_setting_is_one_line_and_makes_nothing(tiny_batches, bad_data, tmp_path, capsys, args, code, says):
    out = tmp_path / "out" / "exp"
    argv = command_line(args, [*tiny_overrides(tiny_batches, out), "depth=8"], tmp=tmp_path, **bad_data)
    status, _, err = run_cli(argv, capsys)
    assert status == code and says in one_line(err), err[-3000:]
    assert not (tmp_path / "out").exists() and not (tmp_path / "abs").exists(), "a refused run makes no folder"


# The dry run refuses what training would refuse in the data wherever no image needs decoding (classes, counts,
# unreadable archives and batches); a corrupt or wrong-sized image is found only when the data is decoded.
DRY_RUN_DATA = [
    s
    for s in SETTINGS
    if s[0].startswith(("data.root={", "data.subset")) and "image}" not in s[0] and "nowhere" not in s[0]
]


@pytest.mark.parametrize("args, code, says", DRY_RUN_DATA, ids=[s[0] for s in DRY_RUN_DATA])
def test_the_dry_run_refuses_data_training_would_refuse(tiny_batches, bad_data, tmp_path, capsys, args, code, says):
    out = tmp_path / "out" / "exp"
    argv = command_line(args, [*tiny_overrides(tiny_batches, out), "depth=8", "dry_run=true"], tmp=tmp_path, **bad_data)
    status, _, err = run_cli(argv, capsys)
    assert status == code and says in one_line(err), err[-3000:]
    assert not (tmp_path / "out").exists()


def test_the_dry_run_says_a_data_refusal_once_for_a_sweep(tiny_batches, bad_data, tmp_path, capsys):
    argv = command_line(
        "-m depth=8,14 arch=plain,resnet data.root={no_cat_train}",
        [*tiny_overrides(tiny_batches, tmp_path / "out" / "exp"), "dry_run=true"],
        **bad_data,
    )
    status, out, err = run_cli(argv, capsys)
    assert status == 2 and one_line(err).startswith("error: 4 runs: ") and "has no images of cat" in err
    assert out.count("refused: ") == 4


# --------------------------------------------------------------------------- a run's files, damaged, on resume


def replace_in_metrics(run: RunDir, line: int, column: str, value: str) -> None:
    rows = run.metrics_file.read_text().splitlines()
    cells = rows[line - 1].split(",")
    cells[rows[0].split(",").index(column)] = value
    rows[line - 1] = ",".join(cells)
    run.metrics_file.write_text("\n".join(rows) + "\n")


def change_checkpoint(run: RunDir, change) -> None:
    checkpoint = torch.load(run.checkpoint, weights_only=False)
    change(checkpoint)
    torch.save(checkpoint, run.checkpoint)


def nan_in_weights(checkpoint: dict) -> None:
    name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][name].view(-1)[0] = float("nan")


def last_line(run: RunDir) -> int:
    return len(run.metrics_file.read_text().splitlines())


# What is done to a run interrupted at step 4 of 8: (the damage, arguments added, exit status, fragments of
# the one line). Nothing is deleted or overwritten: the run directory is left as it was.
# fmt: off
DAMAGED_RUN = {
    # metrics.csv
    "metrics error not a number": (lambda r: replace_in_metrics(r, 3, "error", "abc"), "", 2, ("metrics.csv", "line 3", "not a number", "restore it")),
    "metrics error nan": (lambda r: replace_in_metrics(r, 3, "error", "nan"), "", 2, ("metrics.csv", "line 3", "not finite", "restore it")),
    "metrics error 1.5": (lambda r: replace_in_metrics(r, 3, "error", "1.5"), "", 2, ("metrics.csv", "line 3", "out of range", "restore it")),
    "metrics lr inf": (lambda r: replace_in_metrics(r, 3, "lr", "inf"), "", 2, ("metrics.csv", "line 3", "not finite", "restore it")),
    "metrics elapsed_s empty": (lambda r: replace_in_metrics(r, 3, "elapsed_s", ""), "", 2, ("metrics.csv", "line 3", "not a number", "restore it")),
    "metrics unknown split": (lambda r: replace_in_metrics(r, 3, "split", "training"), "", 2, ("line 3", "split 'training' is not one of train, val, test")),
    "metrics step not a number": (lambda r: replace_in_metrics(r, 3, "step", "-x"), "", 2, ("metrics.csv", "line 3", "not a number")),
    "metrics steps going back": (lambda r: replace_in_metrics(r, last_line(r), "step", "0"), "", 2, ("metrics.csv", "comes after step")),
    "metrics garbage": (lambda r: r.metrics_file.write_bytes(b"\x00\x01garbage\n1,2\n"), "", 2, ("unreadable", "metrics.csv", "restore it, or delete")),
    "metrics row twice": (lambda r: append_to_metrics(r, r.metrics_file.read_text().splitlines()[-1]), "", 2, ("metrics.csv", "two test rows at step 4", "restore it")),
    "metrics train row twice": (lambda r: append_to_metrics(r, r.metrics_file.read_text().splitlines()[1]), "", 2, ("metrics.csv", "two train rows at step 4", "restore it")),
    "metrics a column added": (lambda r: r.metrics_file.write_text("".join(line + ",x\n" for line in r.metrics_file.read_text().splitlines())), "", 2, ("unreadable", "its columns are step, split, error, loss, lr, elapsed_s, x", "restore it")),
    "metrics rows lost": (lambda r: r.metrics_file.write_text(r.metrics_file.read_text().splitlines()[0] + "\n"), "", 2, ("ends at step 0 but last.ckpt is at step 4", "restore the metrics file")),
    # last.ckpt
    "checkpoint with NaN": (lambda r: change_checkpoint(r, nan_in_weights), "", 2, ("last.ckpt", "holds NaN or inf", "move it away")),
    "checkpoint past steps": (lambda r: change_checkpoint(r, lambda c: c.update(global_step=10_000)), "", 2, ("past this run's steps=8",)),
    "checkpoint not one": (lambda r: r.checkpoint.write_bytes(b"not a checkpoint"), "", 2, ("unreadable", "last.ckpt", "move it away to restart this run from step 0, or delete")),
    "checkpoint empty": (lambda r: r.checkpoint.write_bytes(b""), "", 2, ("unreadable", "last.ckpt", "move it away")),
    "checkpoint torn": (lambda r: r.checkpoint.write_bytes(r.checkpoint.read_bytes()[:-100]), "", 2, ("unreadable checkpoint", "last.ckpt", "move it away")),
    # status.json, config.yaml
    "status torn": (lambda r: r.status_file.write_bytes(b'{"state": "runn'), "", 2, ("unreadable", "status.json", "delete it to let the run resume")),
    "status not a mapping": (lambda r: r.status_file.write_text('"running"'), "", 2, ("status.json", "holds \"running\", which is not one of a run's statuses", "delete it")),
    "status a list": (lambda r: r.status_file.write_text("[1, 2]"), "", 2, ("status.json", "holds [1, 2]", "delete it")),
    "config empty": (lambda r: r.config_file.write_text(""), "", 2, ("unreadable", "config.yaml (empty, or not a mapping of settings)", "restore it")),
    "data.json without its fingerprint": (lambda r: r.data_file.write_text('{"source": "CIFAR-10"}'), "", 2, ("data.json is not a record of the data the run started on", "restore it, or delete it")),
    "data.json a list": (lambda r: r.data_file.write_text("[1]"), "", 2, ("data.json is not a record of the data the run started on",)),
    "config torn": (lambda r: r.config_file.write_bytes(b"arch: [unclosed"), "", 2, ("unreadable", "config.yaml", "restore it, or delete")),
    # the same name with a changed learned setting
    "changed optim.lr": (lambda r: None, "optim.lr=0.05", 2, ("was made with another config", "optim.lr: 0.1 -> 0.05", "name=")),
    "changed batch_size": (lambda r: None, "batch_size=8", 2, ("was made with another config", "batch_size: 16 -> 8", "name=")),
    "changed data.val_size": (lambda r: None, "data.val_size=10", 2, ("was made with another config", "data.val_size: 20 -> 10", "name=")),
}
# fmt: on


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, tiny_batches) -> Path:
    """An out_dir holding one run killed after its checkpoint at step 4 of 8 (copied for each case)."""
    out = tmp_path_factory.mktemp("interrupted") / "exp"
    with pytest.MonkeyPatch.context() as patch:
        crash_after_checkpoint(patch, at_step=4)
        with pytest.raises(Crash):
            train(make_spec([*tiny_overrides(tiny_batches, out), "depth=8"]))
    return out


def files(run: RunDir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}


@pytest.mark.parametrize("kind", DAMAGED_RUN)
def test_a_damaged_run_is_refused_on_resume_and_kept(tiny_batches, interrupted, tmp_path, capsys, kind):
    damage, args, code, says = DAMAGED_RUN[kind]
    out = tmp_path / "exp"
    shutil.copytree(interrupted, out)
    run = RunDir(out / "default" / "resnet-8" / "seed0")
    damage(run)
    before = files(run)
    status, _, err = run_cli([*tiny_overrides(tiny_batches, out), "depth=8", *shlex.split(args)], capsys)
    line = one_line(err)
    assert status == code and all(s in line for s in says), err[-3000:]
    assert files(run) == before, "nothing is deleted or overwritten"


@pytest.fixture(scope="module")
def other_data(tmp_path_factory) -> Path:
    """A data set other than tiny_batches: the same classes and counts, as JPEG."""
    return write_folders(tmp_path_factory.mktemp("other_data"), fmt="jpg")


# A run started on one data set, resumed on another (issue #25): refused, exit 2, and its record kept whole.
# (what is done to the run before the resume, fragments of the one line)
# fmt: off
OTHER_DATA = {
    "resumed on other data": (lambda r: None, ("started on other data", "CIFAR-10 from", "than data.root=", "CIFAR-10 (JPEG q75 copy)", "resume it with the data it started on, or delete")),
    "resumed on other data, a run made before data.json": (lambda r: r.data_file.unlink(), ("trained on CIFAR-10 (its dataset.txt), but data.root=", "holds CIFAR-10 (JPEG q75 copy)", "resume it with the data it started on")),
    "data.json torn": (lambda r: r.data_file.write_text('{"finger'), ("unreadable", "data.json", "restore it, or delete it")),
}
# fmt: on


@pytest.mark.parametrize("kind", OTHER_DATA)
def test_a_run_resumed_on_other_data_is_refused_and_its_record_kept(other_data, interrupted, tmp_path, capsys, kind):
    damage, says = OTHER_DATA[kind]
    out = tmp_path / "exp"
    shutil.copytree(interrupted, out)
    run = RunDir(out / "default" / "resnet-8" / "seed0")
    assert json.loads(run.data_file.read_text())["source"] == "CIFAR-10"  # recorded at the start
    damage(run)
    before = files(run)
    status, _, err = run_cli([*tiny_overrides(other_data, out), "depth=8"], capsys)
    line = one_line(err)
    assert status == 2 and all(s in line for s in says), err[-3000:]
    assert files(run) == before and run.dataset_file.read_text() == "CIFAR-10\n", "dataset.txt is never overwritten"


def test_a_run_resumed_on_the_same_data_elsewhere_goes_on(tiny_batches, interrupted, tmp_path, capsys):
    """The fingerprint is of the images, not of their folder: a moved copy (or the same images in another
    lossless layout) resumes."""
    out = tmp_path / "exp"
    shutil.copytree(interrupted, out)
    moved = shutil.copytree(tiny_batches, tmp_path / "moved")
    status, _, err = run_cli([*tiny_overrides(moved, out), "depth=8"], capsys)
    assert status == 0, err[-3000:]
    assert RunDir(out / "default" / "resnet-8" / "seed0").status()["state"] == "done"


# --------------------------------------------------------------------------- two processes, one run directory


def holder_says(run: RunDir, settings: dict | None, data_root: Path | None = None) -> None:
    """What the lock's holder has said of itself: nothing yet (it is loading the data), or its settings (and data)."""
    if settings is not None:
        claim = {"pid": os.getpid(), "host": socket.gethostname(), "settings": settings}
        run.holder_file.write_text(json.dumps({**claim, **({"data_root": str(data_root)} if data_root else {})}))


def a_run_dir(tiny_batches: Path, tmp_path: Path, *args: str) -> tuple[list[str], RunSpec, RunDir]:
    """A depth-8 run on tiny data: its overrides, its spec, and its directory, made as the lock's holder made it."""
    overrides = [*tiny_overrides(tiny_batches, tmp_path / "exp"), "depth=8", *args]
    spec = make_spec(overrides)
    run = RunDir(spec.run_dir)
    run.path.mkdir(parents=True)
    return overrides, spec, run


# Another process holds the run's lock (issue #25): (what it says it trains, arguments, exit status, fragments).
# Only a holder shown to train these very settings lets this one leave the run to it (exit 0).
# fmt: off
LOCKED = {
    "holder says nothing yet": (lambda s: None, "", 2, ("is locked by another process that does not say what it trains", "wait for it to end")),
    "holder trains other settings": (lambda s: {**s, "optim.lr": 0.05}, "", 2, ("another process (pid", "is training", "with other settings (optim.lr: 0.05 -> 0.1)", "use another name=")),
    "holder trains these settings": (lambda s: s, "", 0, ("[skip]", "is training these settings")),
}
# fmt: on


@pytest.mark.parametrize("kind", LOCKED)
def test_a_locked_run_is_left_only_to_a_process_training_its_settings(tiny_batches, tmp_path, capsys, kind):
    says_settings, args, code, says = LOCKED[kind]
    overrides, spec, run = a_run_dir(tiny_batches, tmp_path, *shlex.split(args))
    with FileLock(str(run.lock_file)):  # held here, as by another process training the run
        holder_says(run, says_settings(run_settings(spec.config)))
        status, out, err = run_cli(overrides, capsys)
    assert status == code, err[-3000:]
    line = one_line(err) if code else out.strip().splitlines()[-1]
    assert all(s in line for s in says), line
    assert not run.status_file.exists() and not run.config_file.exists(), "the run is left to its holder"


def test_a_locked_run_is_not_left_to_a_process_training_its_settings_on_other_data(tiny_batches, tmp_path, capsys):
    overrides, spec, run = a_run_dir(tiny_batches, tmp_path)
    with FileLock(str(run.lock_file)):
        holder_says(run, run_settings(spec.config), tmp_path / "other-data")
        status, _, err = run_cli(overrides, capsys)
        assert status == 2, err[-3000:]
        line = one_line(err)
        assert "another process (pid" in line and "on other data (data.root" in line and "other-data" in line, line
        holder_says(run, run_settings(spec.config), Path(tiny_batches).resolve())
        status, out, err = run_cli(overrides, capsys)
        assert status == 0 and "is training these settings" in out, err[-3000:]
    assert not run.status_file.exists() and not run.config_file.exists(), "the run is left to its holder"


def test_a_sweep_with_a_run_another_process_trains_is_not_done(tiny_batches, tmp_path, capsys):
    overrides, spec, run = a_run_dir(tiny_batches, tmp_path)
    with FileLock(str(run.lock_file)):
        holder_says(run, run_settings(spec.config))
        status, out, err = run_cli(["-m", *overrides], capsys)
    assert status == 1, err[-3000:]
    assert "1 runs: 1 running" in out and "being trained by another process" in out


# --------------------------------------------------------------------------- the environment: folders, caches, disks


def a_file(tmp: Path) -> Path:
    (tmp / "a_file").write_text("the user's\n")
    return tmp / "a_file"


# Where a run cannot be written (issue #25): (arguments, exit status, fragment of the one line); nothing is made
# and the user's file is left as it was. {file} is a regular file.
# fmt: off
PLACES = [
    ("out_dir={file}", 2, "a_file is a file, not a folder, so"),
    ("out_dir={file}/exp", 2, "a_file is a file, not a folder, so"),
    ("out_dir=/proc/resnet-repro-no-such", 2, "cannot make /proc/resnet-repro-no-such/default/resnet-8/seed0"),
]
# fmt: on


@pytest.mark.parametrize("args, code, says", PLACES, ids=[p[0] for p in PLACES])
def test_a_run_that_cannot_be_written_is_one_line(tiny_batches, tmp_path, capsys, args, code, says):
    file = a_file(tmp_path)
    argv = command_line(args, [*tiny_overrides(tiny_batches, tmp_path / "exp"), "depth=8"], file=file)
    status, _, err = run_cli(argv, capsys)
    assert status == code and says in one_line(err), err[-3000:]
    assert file.read_text() == "the user's\n" and not (tmp_path / "exp").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_out_dir_is_one_line(tiny_batches, tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir(mode=0o555)
    status, _, err = run_cli([*tiny_overrides(tiny_batches, out), "depth=8"], capsys)
    assert status == 2 and "out_dir must be a folder this user can write" in one_line(err)


# A cache folder that cannot be used costs only the decoding: the run trains, says so once (exit 0).
# fmt: off
CACHES = [
    ("data.cache_dir={file}", "[no cache] cannot write the decoded-data cache into"),
    ("data.cache_dir={file}/sub", "[no cache] cannot write the decoded-data cache into"),
    ("data.cache_dir=/proc/resnet-repro-cache", "[no cache] cannot write the decoded-data cache into /proc/resnet-repro-cache"),
]
# fmt: on


@pytest.mark.parametrize("args, says", CACHES, ids=[c[0] for c in CACHES])
def test_an_unusable_cache_is_said_once_and_the_run_trains(tiny_batches, tmp_path, capsys, args, says):
    argv = command_line(args, [*tiny_overrides(tiny_batches, tmp_path / "exp"), "depth=8"], file=a_file(tmp_path))
    status, out, err = run_cli(argv, capsys)
    assert status == 0, err[-3000:]
    assert sum(says in line for line in out.splitlines()) == 1, out
    assert (tmp_path / "a_file").read_text() == "the user's\n"


def test_an_empty_cache_variable_writes_nothing_into_the_current_folder(tiny_batches, tmp_path, capsys, monkeypatch):
    """RESNET_REPRO_CACHE="" is no cache, never the current directory."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("RESNET_REPRO_CACHE", "")
    overrides = [o for o in tiny_overrides(tiny_batches, tmp_path / "exp") if not o.startswith("data.cache_dir=")]
    status, _, err = run_cli([*overrides, "depth=8"], capsys)
    assert status == 0, err[-3000:]
    assert list(here.iterdir()) == []


def test_a_full_disk_at_a_checkpoint_fails_the_run_in_one_line_keeping_the_last_good_one(
    tiny_batches, tmp_path, capsys, monkeypatch
):
    """The step-8 checkpoint meets a full disk half-way: status.json says failed (with the reason, at step 4),
    no temporary file is left, last.ckpt is the step-4 one, and the same command later resumes from it."""
    import errno

    import pytorch_lightning as pl

    save = pl.Trainer.save_checkpoint

    def full_at_step_8(trainer, path, *args, **kwargs):
        if trainer.global_step < 8:
            return save(trainer, path, *args, **kwargs)
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    overrides = [*tiny_overrides(tiny_batches, tmp_path / "exp"), "depth=8"]
    run = RunDir(make_spec(overrides).run_dir)
    with monkeypatch.context() as patch:
        patch.setattr(pl.Trainer, "save_checkpoint", full_at_step_8)
        status, _, err = run_cli(overrides, capsys)
    line = one_line(err)
    assert status == 2 and "cannot write" in line and "last.ckpt (No space left on device)" in line, err[-3000:]
    assert "run the same command again" in line
    state = run.status()
    assert state["state"] == "failed" and state["step"] == 4 and "No space left on device" in state["error"]
    assert not list(run.path.glob(".*.tmp*")), "no temporary file is left"
    assert torch.load(run.checkpoint, weights_only=False)["global_step"] == 4
    status, out, err = run_cli(overrides, capsys)
    assert status == 0 and f"[resume] {run.path} at step 4 (failed at step 4" in out, err[-3000:]


# --------------------------------------------------------------------------- the report's folder

# Where `python -m resnet_repro.report` is pointed (issue #25): (what is there first, exit status, fragment of
# the one line). It writes only into a folder that is empty (but for a README.md) or its own.
# fmt: off
REPORT_FOLDERS = {
    "the user's table6.csv": (lambda out: (out.mkdir(), (out / "table6.csv").write_text("mine\n")), 2, "holds table6.csv, which no report wrote there"),
    "the user's figure1.png and claims.md": (lambda out: (out.mkdir(), (out / "figure1.png").write_text("mine\n"), (out / "claims.md").write_text("mine\n")), 2, "holds claims.md, figure1.png, which no report wrote"),
    "the user's notes, no report's name": (lambda out: (out.mkdir(), (out / "notes.txt").write_text("mine\n")), 2, "holds notes.txt, which no report wrote there: a report writes only into an empty folder or its own"),
    "a runs folder": (lambda out: (out.mkdir(), (out / "plain-20").mkdir(), (out / "plain-20" / "metrics.csv").write_text("mine\n")), 2, "holds plain-20, which no report wrote there"),
    "a regular file": (lambda out: out.write_text("mine\n"), 2, "is a file, not a folder; give the report a folder with -o"),
    "under a regular file": (lambda out: out.parent.write_text("mine\n"), 2, "cannot make the report folder"),
    "under /proc": (lambda out: None, 2, "cannot make the report folder /proc/resnet-repro-report"),
}
# fmt: on


@pytest.mark.parametrize("kind", REPORT_FOLDERS)
def test_the_report_never_replaces_a_users_files(tmp_path, capsys, kind):
    prepare, code, says = REPORT_FOLDERS[kind]
    fake_run(tmp_path / "runs", "plain", 20, 0, HEALTHY)
    out = {
        "under a regular file": tmp_path / "a_file" / "report",
        "under /proc": Path("/proc/resnet-repro-report"),
    }.get(kind, tmp_path / "out")
    prepare(out)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "runs" not in p.parts}
    assert report.main([str(tmp_path / "runs"), "-o", str(out), "--no-figure7"]) == code
    assert says in one_line(capsys.readouterr().err)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "runs" not in p.parts} == before


def test_a_report_into_a_link_writes_into_the_folder_it_links_to(tmp_path, capsys):
    """-o a symbolic link to an empty folder: the report is made there, the link kept (issue #25: it was swapped
    with the link, left `.out.report-tmp<pid>` behind and said 'cannot write ... (Cannot call rmtree on a symbolic
    link)', exit 2)."""
    fake_run(tmp_path / "runs", "plain", 20, 0, HEALTHY)
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to("real")
    assert report.main([str(tmp_path / "runs"), "-o", str(tmp_path / "out"), "--no-figure7"]) == 0
    assert (tmp_path / "out").is_symlink() and (tmp_path / "real" / "table6.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real", "runs"], "nothing left beside it"


def test_a_report_replaces_its_own_files_whole_and_drops_its_stale_ones(tmp_path, capsys):
    fake_run(tmp_path / "runs", "plain", 20, 0, HEALTHY)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "runs"), "-o", str(out), "--no-figure7"]) == 0
    assert (out / "table6.csv").is_file() and (out / ".written-by-resnet-repro-report").is_file()
    (out / "figure7.csv").write_text("stale\n")  # as an earlier report with Figure 7 left it
    assert report.main([str(tmp_path / "runs"), "-o", str(out), "--no-figure7"]) == 0
    assert not (out / "figure7.csv").exists() and (out / "table6.csv").is_file()
    assert not [p for p in tmp_path.iterdir() if ".report-tmp" in p.name], "no staging folder is left"


def report_twice(tmp_path, between=lambda out: None):
    """A report into tmp_path/out, then (after `between`) a second one of runs that changed: (out, the first
    report's files, their bytes)."""
    fake_run(tmp_path / "runs", "plain", 20, 0, HEALTHY)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "runs"), "-o", str(out), "--no-figure7"]) == 0
    between(out)
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    fake_run(tmp_path / "runs", "resnet", 20, 0, HEALTHY)  # the next report differs: a second net
    return out, first


def tree(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("exchange", [True, False], ids=["one-step exchange", "two renames"])
def test_a_kill_before_the_swap_leaves_the_old_report_whole(tmp_path, monkeypatch, exchange):
    from resnet_repro.report import build

    out, first = report_twice(tmp_path)

    def killed(*args):
        raise KeyboardInterrupt  # where a kill would stop it

    if exchange:  # killed just before the one-step exchange
        monkeypatch.setattr(build, "_exchange", killed)
    else:  # no exchange here: killed between setting the old folder aside and renaming the new one into place
        monkeypatch.setattr(build, "_exchange", lambda a, b: False)
        real = os.rename
        monkeypatch.setattr(build.os, "rename", lambda a, b: killed() if Path(b) == out else real(a, b))
    with pytest.raises(KeyboardInterrupt):
        report.main([str(tmp_path / "runs"), "-o", str(out), "--no-figure7"])
    monkeypatch.undo()
    if not exchange:
        assert not out.exists(), "the kill fell between the two renames"
        build.recover(out)  # what the next report (or campaign collect) does first
    assert tree(out) == first, "the old report, whole"
    assert report.main([str(tmp_path / "runs"), "-o", str(out), "--no-figure7"]) == 0
    assert tree(out) != first and "ResNet-20" in (out / "table6.md").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "nothing left beside it"


def test_a_report_keeps_the_users_files_and_runs_in_its_folder(tmp_path):
    def add_users_files(out):
        (out / "notes.txt").write_text("mine\n")
        (out / "runs" / "plain-20").mkdir(parents=True)
        (out / "runs" / "plain-20" / "metrics.csv").write_text("kept\n")

    out, first = report_twice(tmp_path, add_users_files)
    inode = (out / "runs" / "plain-20" / "metrics.csv").stat().st_ino
    assert report.main([str(tmp_path / "runs"), "-o", str(out), "--no-figure7"]) == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "runs" / "plain-20" / "metrics.csv").read_text() == "kept\n"
    assert (out / "runs" / "plain-20" / "metrics.csv").stat().st_ino == inode, "linked into the new folder, not copied"
    assert "ResNet-20" in (out / "table6.md").read_text()


def test_a_file_written_into_the_old_folder_during_the_swap_is_carried_over(tmp_path, monkeypatch):
    from resnet_repro.report import build

    out, _ = report_twice(tmp_path)
    real = build._swap

    def swap_while_a_run_writes(new, old):
        (old / "late.txt").write_text("written between the mirroring and the swap\n")
        real(new, old)

    monkeypatch.setattr(build, "_swap", swap_while_a_run_writes)
    assert report.main([str(tmp_path / "runs"), "-o", str(out), "--no-figure7"]) == 0
    assert (out / "late.txt").read_text().startswith("written between")


# --------------------------------------------------------------------------- campaign files, malformed

# (the campaign file's text, exit status of `campaign start`, fragment of the one line): refused, nothing made.
# fmt: off
CAMPAIGN_FILES = [
    ("runs: [unclosed\n", 2, "is not valid YAML"),
    ("jobs: 1\nthreads: 1\nruns:\n  - arch=plain\n - depth=8\n", 2, "is not valid YAML"),
    ("- arch=plain depth=8\n- arch=resnet depth=8\n", 2, "is a list, not a campaign (a mapping of jobs:, threads:, runs:)"),
    ("", 2, "is an empty file, not a campaign"),
    ("jobs: 1\nthreads: 1\nruns: 5\n", 2, "runs must be a list of run.py override lines"),
    ("jobs: 1\nthreads: 1\nruns: {a: 1}\n", 2, "runs must be a list of run.py override lines"),
    ("jobs: 1\nthreads: 1\nruns: [[arch=plain]]\n", 2, "runs must be a list of run.py override lines"),
    (b"jobs: 1\xff\n", 2, "cannot read"),
]
# fmt: on


@pytest.mark.parametrize("text, code, says", CAMPAIGN_FILES, ids=[repr(c[0])[:40] for c in CAMPAIGN_FILES])
def test_a_malformed_campaign_file_is_one_line(tiny_batches, tmp_path, capsys, text, code, says):
    from resnet_repro.campaign import main as campaign

    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    home = tmp_path / "home"
    assert campaign(["start", str(path), "--home", str(home), "--data-root", str(tiny_batches)]) == code
    assert says in one_line(capsys.readouterr().err)
    assert not home.exists()


# (what is done to a started campaign's campaign.json, fragment of the one line `campaign status` prints, exit 2)
# fmt: off
CAMPAIGN_RECORDS = {
    "campaign.json cut": (lambda c: c.definition_file.write_text(c.definition_file.read_text()[:40]), "unreadable"),
    "campaign.json not a campaign's": (lambda c: c.definition_file.write_text("[1, 2]"), "does not list a campaign's runs"),
    "campaign.json runs of the wrong type": (lambda c: c.definition_file.write_text('{"runs": "all"}'), "does not list a campaign's runs"),
    # JSON with runs, but not what status, the supervisor and collect read (issue #25: KeyError tracebacks)
    "campaign.json without its commit": (lambda c: edit_record(c, lambda d: d.pop("commit")), "is not a campaign's record (commit: missing or of the wrong kind)"),
    "campaign.json jobs not a number": (lambda c: edit_record(c, lambda d: d.update(jobs="two")), "is not a campaign's record (jobs: missing"),
    "campaign.json a run's depth not a number": (lambda c: edit_record(c, lambda d: d["runs"][0].update(depth="x")), "does not list a campaign's runs"),
    "campaign.json a run outside its runs folder": (lambda c: edit_record(c, lambda d: d["runs"][0].update(run_id="../../elsewhere")), "does not list a campaign's runs"),
}
# fmt: on


def started_campaign(home: Path):
    from resnet_repro.campaign.store import Campaign

    campaign = Campaign("tiny", home)
    campaign.dir.mkdir(parents=True)
    run = {
        "overrides": ["arch=plain", "depth=8"],
        "experiment": "tiny",
        "run_id": "plain-8/seed0",
        "depth": 8,
        "steps": 8,
    }
    record = {"name": "tiny", "jobs": 1, "threads": 1, "runs": [run], "commit": "c0ffee", "data_root": "/data"}
    campaign.definition_file.write_text(json.dumps({**record, "results_dir": str(home / "results")}, indent=1))
    return campaign


def edit_record(campaign, change) -> None:
    definition = json.loads(campaign.definition_file.read_text())
    change(definition)
    campaign.definition_file.write_text(json.dumps(definition))


def test_a_whole_campaign_record_is_read(tmp_path, capsys):
    from resnet_repro.campaign import main as campaign

    started_campaign(tmp_path / "home")
    assert campaign(["status", "tiny", "--home", str(tmp_path / "home")]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("kind", CAMPAIGN_RECORDS)
def test_a_damaged_campaign_record_is_one_line_with_the_fix(tmp_path, capsys, kind):
    from resnet_repro.campaign import main as campaign

    damage, says = CAMPAIGN_RECORDS[kind]
    record = started_campaign(tmp_path / "home")
    damage(record)
    assert campaign(["status", "tiny", "--home", str(tmp_path / "home")]) == 2
    line = one_line(capsys.readouterr().err)
    assert says in line and "campaign.json" in line and "start the campaign again" in line, line


def test_a_torn_last_event_is_skipped(tmp_path):
    record = started_campaign(tmp_path / "home")
    record.event("started", runs=1)
    with open(record.events_file, "a") as f:
        f.write('{"event": "run_do')  # the supervisor killed mid-line
    assert [e["event"] for e in record.events()] == ["started"]


# --------------------------------------------------------------------------- a run's files, damaged, when read


def replace_in_config(run: RunDir, old: str, new: str) -> None:
    run.config_file.write_text(run.config_file.read_text().replace(old, new))


def append_to_metrics(run: RunDir, line: str) -> None:
    run.metrics_file.write_text(run.metrics_file.read_text() + line + "\n")


def keep_metrics_lines(run: RunDir, n: int) -> None:
    run.metrics_file.write_text("\n".join(run.metrics_file.read_text().splitlines()[:n]) + "\n")


def drop_metrics_lines(run: RunDir, *numbers: int) -> None:
    lines = run.metrics_file.read_text().splitlines()
    run.metrics_file.write_text("\n".join(x for i, x in enumerate(lines, start=1) if i not in numbers) + "\n")


def old_trained_with(run: RunDir, content: bytes) -> None:
    run.trained_with_file.unlink()  # a run made before trained_with.json
    run.trained_with_text_file.write_bytes(content)


# What `python -m resnet_repro.report` says of a damaged run beside healthy ones (exit 1: the report left it
# out): (what is done to the run, the file named, words of the reason, words of the fix). The healthy runs
# are reported; test_damaged_reading.py reads each case through load_results and load_runs too.
# fmt: off
DAMAGED_READING = {
    "metrics value not a number": (lambda r: replace_in_metrics(r, 3, "error", "abc"), "metrics.csv", "line 3", "restore it"),
    "metrics value not finite": (lambda r: replace_in_metrics(r, 2, "lr", "inf"), "metrics.csv", "not finite", "restore it"),
    "metrics not UTF-8": (lambda r: r.metrics_file.write_bytes(b"\xff\xfe\x00garbage"), "metrics.csv", "unreadable", "restore it"),
    "metrics without its header": (lambda r: r.metrics_file.write_text("1,2,3\n4,5,6\n"), "metrics.csv", "unreadable", "restore it"),
    "metrics steps going back": (lambda r: replace_in_metrics(r, 4, "step", "1"), "metrics.csv", "comes after", "restore it"),
    "status not JSON": (lambda r: r.status_file.write_text('{"state": "do'), "status.json", "unreadable", "delete it"),
    "status of no known state": (lambda r: r.status_file.write_text('{"state": "finished"}'), "status.json", "'finished'", "delete it"),
    "status not a mapping": (lambda r: r.status_file.write_text("[1, 2]"), "status.json", "not one of", "delete it"),
    "status missing": (lambda r: r.status_file.unlink(), "status.json", "no ", "run its command again"),
    "config not YAML": (lambda r: r.config_file.write_text("arch: [plain\ndepth: 20\n"), "config.yaml", "unreadable", "restore it"),
    "config missing": (lambda r: r.config_file.unlink(), "config.yaml", "no ", "restore it"),
    "config depth not a number": (lambda r: replace_in_config(r, "depth: 20", "depth: twenty"), "config.yaml", "does not describe a run", "restore it"),
    "config of an unknown arch": (lambda r: replace_in_config(r, "arch: plain", "arch: vgg"), "config.yaml", "does not describe a run", "restore it"),
    "config not a mapping": (lambda r: r.config_file.write_text("- 1\n- 2\n"), "config.yaml", "not a run's config", "restore it"),
    "trained_with.json not JSON": (lambda r: r.trained_with_file.write_text("[{"), "trained_with.json", "unreadable", "delete it"),
    "trained_with.json not a list": (lambda r: r.trained_with_file.write_text('{"code": "c0ffee"}'), "trained_with.json", "not a list", "delete it"),
    "trained_with.txt not UTF-8": (lambda r: old_trained_with(r, b"code \xff\xfe"), "trained_with.txt", "unreadable", "delete it"),
    "dataset.txt not UTF-8": (lambda r: r.dataset_file.write_bytes(b"\xff\xfe CIFAR"), "dataset.txt", "unreadable", "delete it"),
    # rows that read well but disagree with the run's config and status (issue #25): a number no run computed
    "metrics final test row twice": (lambda r: append_to_metrics(r, "2000,test,0.0123,1.0,0.001,9.0"), "metrics.csv", "two test rows at step 2000", "restore it"),
    "metrics cut under a done status": (lambda r: keep_metrics_lines(r, 4), "metrics.csv", "the run is done but its rows end at step 1000, not 2000", "restore it"),
    "metrics row between log points": (lambda r: [replace_in_metrics(r, line, "step", "500") for line in (2, 3, 4)], "metrics.csv", "a row at step 500, which training does not log at", "restore it"),
    "metrics a log point missing": (lambda r: drop_metrics_lines(r, 2, 3, 4), "metrics.csv", "no rows at step 1000: rows are missing", "restore it"),
    "metrics test row missing": (lambda r: drop_metrics_lines(r, 4), "metrics.csv", "no test row at step 1000", "restore it"),
    "metrics val row missing": (lambda r: drop_metrics_lines(r, 3), "metrics.csv", "no val row at step 1000", "restore it"),
    "metrics train row missing": (lambda r: drop_metrics_lines(r, 5), "metrics.csv", "no train row at step 2000", "restore it"),
    "metrics val rows without a val split": (lambda r: replace_in_config(r, "val_size: 5000", "val_size: 0"), "metrics.csv", "data.val_size=0", "restore it"),
    "metrics a cadence other than the config's": (lambda r: replace_in_config(r, "eval_every: 1000", "eval_every: 500"), "metrics.csv", "no rows at step 500", "restore it"),
    # a config changed by hand after the run trained (issue #25): its numbers would be reported as another net's
    "config depth edited": (lambda r: replace_in_config(r, "depth: 20", "depth: 56"), "config.yaml", "describes plain-56/seed1, but the run was made as plain-20/seed1 (its run_id)", "restore them"),
    "config arch edited": (lambda r: replace_in_config(r, "arch: plain", "arch: resnet"), "config.yaml", "describes resnet-20/seed1, but the run was made as plain-20/seed1", "restore them"),
    "config seed edited": (lambda r: replace_in_config(r, "seed: 1", "seed: 7"), "config.yaml", "describes plain-20/seed7", "restore them"),
    "metrics a train loss of NaN in a done run": (lambda r: replace_in_metrics(r, 2, "loss", "nan"), "metrics.csv", "a train row at step 1000 with loss=nan, but the run is done, not diverged", "restore it"),
    "metrics a column added": (lambda r: r.metrics_file.write_text("".join(line + ",x\n" for line in r.metrics_file.read_text().splitlines())), "metrics.csv", "its columns are step, split, error, loss, lr, elapsed_s, x", "restore it"),
    "status step not a number": (lambda r: r.status_file.write_text('{"state": "done", "step": "2000"}'), "status.json", "says step '2000', not a whole number", "delete it"),
    "status done before its steps": (lambda r: r.status_file.write_text('{"state": "done", "step": 1000}'), "status.json", "says done at step 1000", "delete it"),
}
# fmt: on
HEALTHY = {"train": [0.5, 0.2], "val": [0.5, 0.3], "test": [0.5, 0.25]}


@pytest.mark.parametrize("kind", DAMAGED_READING)
def test_the_report_leaves_out_a_damaged_run_naming_the_file(tmp_path, capsys, kind):
    damage, file, reason, fix = DAMAGED_READING[kind]
    for depth in (20, 56):
        fake_run(tmp_path, "plain", depth, 0, HEALTHY)
    bad = fake_run(tmp_path, "plain", 20, 1, HEALTHY)
    damage(bad)
    assert report.main([str(tmp_path), "-o", str(tmp_path / "report"), "--no-figure7"]) == 1
    out = capsys.readouterr().out
    [line] = [x.strip() for x in out.splitlines() if x.strip().startswith("left out run hand/plain-20/seed1: ")]
    assert file in line and str(bad.path) in line and reason in line and fix in line, line
    assert "this report is incomplete" in out
    table = pd.read_csv(tmp_path / "report" / "table6.csv")  # the healthy runs, reported
    assert table.net.tolist() == ["plain-20", "plain-56"] and table.runs.tolist() == [1, 1]
    skipped = line.removeprefix("left out run ")
    index = (tmp_path / "report" / "README.md").read_text()
    assert "## Left out: this report is incomplete" in index and f"- run {skipped}" in index
    provenance = json.loads((tmp_path / "report" / "provenance.json").read_text())
    reason_line = skipped.removeprefix("hand/plain-20/seed1: ")
    assert provenance["damaged_runs"] == [{"run": "hand/plain-20/seed1", "file": file, "reason": reason_line}]
    assert provenance["left_out"] == [f"run {skipped}"]


# --------------------------------------------------------------------------- in a process of its own: python run.py


def directories(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()} if root.exists() else set()


def test_refused_in_a_process_of_its_own_one_line_and_nothing_made(tiny_batches, tmp_path):
    """What a fresh interpreter prints (no warning, no traceback) for a refused run, and that Hydra makes
    no folder for it: exit 2, one line, out_dir as it was."""
    out = tmp_path / "exp"
    out.mkdir()
    result = run_py(*tiny_overrides(tiny_batches, out), "depth=21")
    assert result.returncode == 2 and "depth=21 is not 6n+2" in one_line(result.stderr)
    assert directories(out) == set()


def test_a_sweep_with_a_refused_run_makes_folders_only_for_the_accepted_one(tiny_batches, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    result = run_py("-m", *tiny_overrides(tiny_batches, out), "report=false", "name=mix", "depth=8,21")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 runs: 1 done, 1 invalid" in result.stdout and "invalid  resnet-21/seed0" in result.stdout
    [launch] = (out / "mix" / ".outcomes").iterdir()
    # the sweep's folder (Hydra's multirun.yaml, the launch's outcomes) and the accepted run's directory
    assert directories(out) == {
        "mix",
        "mix/.outcomes",
        f"mix/.outcomes/{launch.name}",
        "mix/resnet-8",
        "mix/resnet-8/seed0",
        "mix/resnet-8/seed0/snapshots",  # its weight snapshots (trainer.snapshots)
    }
    assert {p.name for p in (out / "mix").iterdir() if p.is_file()} == {"multirun.yaml"}


# (arguments, exit status, fragment of the last line on stderr, or of the sweep's summary on stdout)
DIVERGED = [
    ("optim.lr=1e6", 3, "training loss nan; delete the directory to retry (e.g. with a lower optim.lr)"),
    ("-m optim.lr=1e6 name=diverging arch=resnet,plain", 1, "2 runs: 2 diverged"),
]


@pytest.mark.parametrize("args, code, says", DIVERGED)
def test_a_diverged_run_is_not_a_success(tiny_batches, tmp_path, args, code, says):
    """A run whose loss becomes NaN exits 3 with one line (not 0 in silence); a sweep whose only trouble is a
    diverged run exits 1: neither counts as a success for a script or a scheduler."""
    run_args = [*tiny_overrides(tiny_batches, tmp_path), "report=false", "depth=14", "steps=16", "log_every=2"]
    result = run_py(*command_line(args, run_args))
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
    if code == 3:
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("diverged: ") and says in last
    else:
        assert says in result.stdout


def test_a_torn_checkpoint_is_one_line_from_a_process_of_its_own(tiny_batches, interrupted, tmp_path):
    out = tmp_path / "exp"
    shutil.copytree(interrupted, out)
    run = RunDir(out / "default" / "resnet-8" / "seed0")
    run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:-100])
    before = files(run)
    result = run_py(*tiny_overrides(tiny_batches, out), "depth=8")
    assert result.returncode == 2 and "unreadable checkpoint" in one_line(result.stderr)
    assert files(run) == before and run.status()["state"] == "running"


def test_ctrl_c_keeps_the_step_says_how_to_resume_and_exits_130(tiny_batches, tmp_path):
    """SIGINT, as a terminal's Ctrl-C sends it: the run checkpoints the step it is on, says "stopped" in
    status.json and in one line, exits 130; the same command resumes to the metrics of an uninterrupted run."""
    overrides = [*tiny_overrides(tiny_batches, tmp_path / "stopped"), *RESUMABLE]
    assert train(make_spec([*tiny_overrides(tiny_batches, tmp_path / "whole"), *RESUMABLE])) == "done"
    run = RunDir(tmp_path / "stopped" / "default" / "resnet-8" / "seed0")
    log = tmp_path / "run.log"
    process = start_run_py(*overrides, log=log)
    wait_for(lambda: run.status().get("step", 0) >= 10, what="two checkpoints")
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 128 + signal.SIGINT, log.read_text()[-3000:]
    status = run.status()
    assert status["state"] == "stopped" and status["signal"] == "SIGINT" and 10 <= status["step"] < 60
    assert torch.load(run.checkpoint, weights_only=False)["global_step"] == status["step"]
    lines = log.read_text().strip().splitlines()
    assert lines[-1] == f"[stopped] {run.path}: stopped at step {status['step']}; run the same command to resume"
    assert sum(line.startswith("[stopped]") for line in lines) == 1 and "Traceback" not in log.read_text()

    resumed = run_py(*overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        f"[resume] {run.path} at step {status['step']} (stopped at step {status['step']} by SIGINT)" in resumed.stdout
    )
    assert metrics(run) == metrics(RunDir(tmp_path / "whole" / "default" / "resnet-8" / "seed0"))
    assert run.status()["state"] == "done"


def test_a_sweep_whose_runs_are_all_refused_writes_no_report(tiny_batches, tmp_path):
    out = tmp_path / "exp"
    result = run_py("-m", *tiny_overrides(tiny_batches, out), "name=none", "depth=8,14", "optim.lr=-1")
    assert result.returncode == 1 and "2 runs: 2 invalid" in result.stdout, result.stdout[-3000:]
    assert "no report: no run under" in result.stdout
    assert not (out / "none" / "report").exists(), "no report folder that says only 'skipped everything'"
    # one refusal for every run: said once when it happens (stderr), and once in the summary (stdout)
    said = "optim.lr=-1 must be a number > 0"
    assert result.stderr.count(said) == 1 and result.stdout.count(said) == 1
