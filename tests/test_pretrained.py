"""Weights by name and akamaster's pretrained ResNets imported into this project's nets.

The reference is akamaster/pytorch_resnet_cifar10's resnet.py (BSD-2), written out below as it is
there (its LambdaLayer shortcut, option A padded on both sides): an imported net must give its
logits. With random weights this runs everywhere; with the published weights (../shared/reference-weights,
never committed) where they are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_repro import load_net
from resnet_repro.models import CifarNet
from resnet_repro.pretrained import (
    WeightsError,
    akamaster_file,
    akamaster_inputs,
    from_akamaster,
    load_akamaster,
    main,
)

REPO = Path(__file__).resolve().parents[1]
REFERENCE_WEIGHTS = REPO.parent / "shared" / "reference-weights"
SHARED_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"
needs_weights = pytest.mark.skipif(not REFERENCE_WEIGHTS.is_dir(), reason="no ../shared/reference-weights")


def reference(depth: int) -> nn.Module:
    """akamaster's resnet.py (the same code the data cross-check trains with, written apart from this project's)."""
    from benchmarks.crosscheck import ResNet as AkamasterResNet

    return AkamasterResNet((depth - 2) // 6)


def randomized(net: nn.Module, seed: int) -> nn.Module:
    """Every weight and BN statistic random (not a fresh init: BN's running stats would be 0 and 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=generator) + 0.5 if "running_var" in name else None
                values = torch.randn(tensor.shape, generator=generator) * 0.3 if values is None else values
                tensor.copy_(values)
    return net.eval()


def images(n: int = 16, seed: int = 0) -> torch.Tensor:
    return akamaster_inputs(torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("depth", [20, 32])
def test_imported_random_weights_give_the_reference_logits(depth):
    ref = randomized(reference(depth), seed=depth)
    ours = CifarNet(depth, "A").eval()
    ours.load_state_dict({**ours.state_dict(), **from_akamaster(ref.state_dict(), depth)})
    x = images()
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert expected.abs().max() > 1  # logits that mean something, not all near zero
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


def test_without_the_channel_order_the_logits_differ():
    """The padding convention matters: names mapped but channels left in akamaster's order give other logits,
    so the test above could fail."""
    depth = 20
    ref = randomized(reference(depth), seed=1)
    renamed = {}
    for key, value in ref.state_dict().items():
        key = key.replace("linear.", "fc.")
        if key.startswith("layer"):
            stage, block, rest = key.split(".", 2)
            key = f"blocks.{(int(stage[5:]) - 1) * 3 + int(block)}.{rest}"
        renamed[key] = value
    ours = CifarNet(depth, "A").eval()
    ours.load_state_dict(renamed)
    x = images()
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() > 0.1


def test_a_file_of_another_depth_is_refused(tmp_path):
    path = tmp_path / "resnet20-00000000.th"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference(20).state_dict().items()}}, path)
    with pytest.raises(WeightsError, match="holds a ResNet-20, not a ResNet-32"):
        load_akamaster(path, 32)
    assert load_akamaster(path).depth == 20  # the depth read from the file


@needs_weights
@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_published_weights_give_the_reference_logits(depth):
    path = akamaster_file(depth, REFERENCE_WEIGHTS)
    ref = reference(depth)
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    ref.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    ref.eval()
    ours = load_akamaster(path, depth)
    x = images(8, seed=depth)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert (got - expected).abs().max() < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


@needs_weights
def test_load_net_finds_akamaster_by_name(monkeypatch):
    monkeypatch.setenv("RESNET_REPRO_REFERENCE_WEIGHTS", str(REFERENCE_WEIGHTS))
    net = load_net("akamaster/resnet-20")
    assert isinstance(net, CifarNet) and net.depth == 20 and not net.training


def test_load_net_loads_a_committed_run_by_name():
    net = load_net("paper/resnet-20", results=REPO / "results")
    assert isinstance(net, CifarNet) and (net.depth, net.shortcut) == (20, "A") and not net.training
    saved = torch.load(REPO / "results/paper/runs/resnet-20/seed0/weights.pt", weights_only=True)["state_dict"]
    assert torch.equal(net.fc.weight, saved["model.fc.weight"])
    plain = load_net("paper/plain-20/seed0", results=REPO / "results")
    assert plain.shortcut == "none"


def test_load_net_names_what_is_there():
    with pytest.raises(WeightsError, match="committed runs: .*paper/resnet-20/seed0"):
        load_net("paper/resnet-21", results=REPO / "results")
    with pytest.raises(WeightsError, match="not a net's name"):
        load_net("resnet-20")


def test_evaluate_without_weights_is_one_line(tmp_path, capsys):
    assert main(["evaluate", "--depth", "20", "--weights", str(tmp_path), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no resnet20-*.th in") and err.count("\n") == 1


@needs_weights
def test_evaluate_writes_test_error_and_figure7_rows(tmp_path, capsys, tiny_batches):
    """On the tiny data set: the command runs end to end and writes rows the report can read."""
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(akamaster_file(20, REFERENCE_WEIGHTS), weights)
    out = tmp_path / "out"
    assert (
        main(
            [
                "evaluate",
                "--depth",
                "20",
                "--weights",
                str(weights),
                "--data-root",
                str(tiny_batches),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "akamaster/resnet-20" in capsys.readouterr().out
    import pandas as pd

    errors = pd.read_csv(out / "pretrained.csv")
    assert list(errors.net) == ["akamaster/resnet-20"] and 0 <= errors.test_error[0] <= 1
    stats = pd.read_csv(out / "figure7.csv")
    assert list(stats.layer) == list(range(1, 20)) and (stats["std"] > 0).all()


def test_error_and_stds_in_one_pass_equal_each_on_its_own():
    from resnet_repro.analysis import response_stds
    from resnet_repro.pretrained import AkamasterBatches, error_and_response_stds

    net = randomized(CifarNet(20, "A"), seed=3)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (40, 3, 32, 32), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 10, (40,), generator=generator)
    batches = AkamasterBatches(pixels, labels, batch_size=16)
    error, stds = error_and_response_stds(net, batches)
    with torch.no_grad():
        expected = (net(akamaster_inputs(pixels)).argmax(1) != labels).float().mean().item()
    assert error == pytest.approx(expected) and 0 < error < 1
    assert stds == pytest.approx(response_stds(net, batches))
