"""`--help` of run.py and of the plan: the project's settings with their defaults and meanings (conf/config.yaml's
comments), the presets, launchers and loggers; Hydra's own help one flag away."""

from __future__ import annotations

import subprocess
import sys
from unittest import mock

import pytest
from conftest import REPO

from resnet_repro import cli
from resnet_repro.config import defaults


def run_help(argv: list[str], capsys, entry=cli.main) -> str:
    with mock.patch.object(sys, "argv", ["run.py", *argv]), pytest.raises(SystemExit) as stopped:
        entry()
    assert stopped.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_setting_with_its_default_and_meaning(flag, capsys):
    text = run_help([flag, "depth=20"], capsys)
    lines = text.splitlines()
    for key in defaults():
        assert any(line.lstrip().startswith(f"{key}=") for line in lines), key
    assert "arch=resnet" in text and "plain | resnet: the two differ only by the shortcut" in text
    assert "trainer.precision=auto" in text and "32-true | bf16-mixed | 16-mixed" in text
    # a comment continued on the next lines of config.yaml is read whole
    assert "false: never" in " ".join(text.split())
    # a key whose comment stands on the lines above it (no room beside a long default) gets that comment
    flat = " ".join(text.split())
    assert "eval_every=${at_most:1000,${steps}} iterations between evaluations of val and test error" in flat
    assert "data.root=${oc.env:CIFAR10_ROOT,data/cifar10} where the data is" in flat
    assert "Each key's rule" not in flat  # a section's own comment is no key's meaning
    assert "Hydra" not in text.splitlines()[0] and "--hydra-help" in text


def test_help_lists_presets_launchers_and_loggers_not_campaigns(capsys):
    text = run_help(["--help"], capsys)
    for option in ("paper", "quick", "tenth", "local", "slurm", "csv", "tensorboard", "wandb", "mlflow"):
        assert any(line.split()[:1] == [option] for line in text.splitlines()), option
    assert "experiment=NAME" in text and "hydra/launcher=NAME" in text and "logger=" in text
    assert (
        not any(line.split()[:1] == ["evidence"] for line in text.splitlines()) and "campaign=" not in text
    )  # a campaign is started with resnet_repro.campaign


def test_plan_help_says_what_a_plan_is_and_lists_the_settings(capsys):
    from resnet_repro.plan import main

    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0
    assert out.startswith("usage: python -m resnet_repro.plan") and "nothing is trained" in out.lower()
    assert "optim.lr=0.1" in out


def test_plan_help_from_the_command_line():
    """It failed before (Hydra's LexerNoViableAltException: --help)."""
    done = subprocess.run(
        [sys.executable, "-m", "resnet_repro.plan", "--help"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stderr == "" and "data.root=" in done.stdout
