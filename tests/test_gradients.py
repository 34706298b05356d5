"""Gradient flow and F(x)+x, measured: the numbers are what autograd says, checkpoints are found, the claim decides."""

import shutil

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import make_spec, tiny_overrides

from resnet_repro import gradients
from resnet_repro.gradients import (
    HEALTHY_FACTOR,
    checkpoints,
    flow_ratio,
    gradient_norms,
    initial_model,
    layers,
    run_gradient_norms,
)
from resnet_repro.models import build_model
from resnet_repro.report.gradients import gradient_claims
from resnet_repro.residuals import residual_ratios
from resnet_repro.results import load_results
from resnet_repro.train import train


def batches(n=2, size=8):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(size, 3, 32, 32, generator=g), torch.arange(size) % 10) for _ in range(n)]


def test_weight_gradient_norms_are_autograds():
    model = build_model("plain", 8)
    data = batches()
    norms = gradient_norms(model, data)
    expected = torch.zeros(len(layers(model)), dtype=torch.float64)
    for images, labels in data:
        copy = build_model("plain", 8)
        copy.load_state_dict(model.state_dict())
        copy.train().zero_grad()
        F.cross_entropy(copy(images), labels).backward()
        expected += torch.stack([m.weight.grad.double().norm() for m in layers(copy)])
    w = norms[norms.kind == "weight"]
    assert w["index"].tolist() == list(range(1, 9))  # 8 layers: stem, 3 blocks x 2, the FC
    assert w.norm.to_numpy() == pytest.approx((expected / len(data)).numpy(), rel=1e-5)
    assert len(norms[norms.kind == "block"]) == 1 + 3  # the stem and every block
    # the measured model is left as it was: its BN statistics did not move
    assert torch.equal(model.bn1.running_mean, build_model("plain", 8).bn1.running_mean)


def test_block_output_gradient_is_the_gradient_at_the_blocks_output():
    model = build_model("resnet", 8)
    images, labels = batches(1)[0]
    outputs = {}
    handle = model.blocks[-1].register_forward_hook(lambda m, i, o: outputs.setdefault("h", o))
    model.train()
    loss = F.cross_entropy(model(images), labels)
    (grad,) = torch.autograd.grad(loss, outputs["h"])
    handle.remove()
    fresh = build_model("resnet", 8)
    fresh.load_state_dict(model.state_dict())  # the BN statistics the forward above moved
    norms = gradient_norms(fresh, [(images, labels)])
    last = norms[norms.kind == "block"].sort_values("index").norm.iloc[-1]
    assert last == pytest.approx(grad.norm().item(), rel=1e-5)


def test_flow_ratio_and_the_claim_decide_on_the_numbers():
    def frame(arch, values, step=0):
        return pd.DataFrame(
            {
                "arch": arch,
                "depth": 56,
                "step": step,
                "kind": "weight",
                "index": range(1, len(values) + 1),
                "norm": values,
            }
        )

    healthy = frame("plain", [1.0] * 3 + [2.0] * 3 + [9.0])  # the FC (last) is left out of the ratio
    assert flow_ratio(healthy) == pytest.approx(0.5)
    vanishing = frame("plain", [1e-3] * 3 + [1.0] * 3 + [1.0], step=100)
    resnet = frame("resnet", [1.0] * 7)
    assert gradient_claims(pd.concat([healthy, resnet])).verdict.tolist() == ["holds"]
    claim = gradient_claims(pd.concat([healthy, vanishing, resnet])).iloc[0]
    assert claim.verdict == "does not hold" and "step 100: 0.001" in claim.evidence
    assert claim.margin == "lowest 0.001 (step 100): 100.0x below 1/10" and "one seed" in claim.seeds
    assert gradient_claims(pd.concat([healthy, resnet])).iloc[0].margin == "lowest 0.5 (step 0): 5.0x above 1/10"
    assert f"factor {HEALTHY_FACTOR:g}" in claim.claim


def test_initialisation_from_the_seed_is_trainings(tiny_batches, tmp_path):
    """A run's step 0, rebuilt from its seed, is the net training started from (train.py: seed_everything, build)."""
    spec = make_spec(["arch=plain", "depth=8", "seed=3", *tiny_overrides(tiny_batches, tmp_path)])
    pl.seed_everything(3, verbose=False)
    trained_from = spec.net.build()
    run = {"seed": 3, "arch": "plain", "depth": 8, "shortcut": "none", "block": "basic"}
    rebuilt = initial_model(run)
    assert all(torch.equal(a, b) for a, b in zip(trained_from.state_dict().values(), rebuilt.state_dict().values()))


def test_a_runs_checkpoints_and_its_cached_norms(tiny_batches, tmp_path, monkeypatch):
    """Training keeps snapshots (trainer.snapshots); their step 0 is the net rebuilt from the seed."""
    spec = make_spec(
        ["arch=resnet", "depth=8", "trainer.snapshots=[0,0.5,1.0]", *tiny_overrides(tiny_batches, tmp_path)]
    )
    assert train(spec) == "done"
    run = load_results(tmp_path).runs.iloc[0].to_dict()
    found = checkpoints(run)
    assert [(step, source) for step, source, _ in found] == [
        (0, "snapshots/step-0.pt"),
        (4, "snapshots/step-4.pt"),
        (8, "snapshots/step-8.pt"),
    ]
    at_start = found[0][2].state_dict()
    assert all(torch.equal(at_start[k], v) for k, v in initial_model(run).state_dict().items())
    assert not torch.equal(found[2][2].conv1.weight, at_start["conv1.weight"])  # it trained
    norms = run_gradient_norms(run, batches=1, batch_size=16)
    assert sorted(norms.step.unique()) == [0, 4, 8] and (norms.norm > 0).all()
    assert (spec.run_dir / "gradient_norms.json").is_file()
    again = run_gradient_norms(run, batches=1, batch_size=16)  # read back, the same numbers
    pd.testing.assert_frame_equal(norms, again)
    # the same data elsewhere is the same data: read back, though nothing is loaded (the data is unreadable there)
    moved = shutil.copytree(tiny_batches, tmp_path / "moved")
    monkeypatch.setattr(gradients, "load_cifar10", lambda *a, **k: pytest.fail("the data was loaded"))
    pd.testing.assert_frame_equal(norms, run_gradient_norms(run, moved, batches=1, batch_size=16))


def test_residual_ratio_is_zero_when_the_branch_is_and_one_for_a_copy():
    model = build_model("resnet", 8).eval()
    for block in model.blocks:
        torch.nn.init.zeros_(block.bn2.weight)
        torch.nn.init.zeros_(block.bn2.bias)
    assert residual_ratios(model, batches(1)) == pytest.approx([0.0, 0.0, 0.0])
    block = model.blocks[0]
    torch.nn.init.ones_(block.bn2.weight)
    x = torch.randn(4, 16, 32, 32)
    ratio = (block.residual(x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).mean().item()
    # the first block's input is the stem's output for these images
    stem = torch.relu(model.bn1(model.conv1(batches(1)[0][0])))
    expected = (block.residual(stem).flatten(1).norm(dim=1) / stem.flatten(1).norm(dim=1)).mean().item()
    assert residual_ratios(model, batches(1))[0] == pytest.approx(expected, rel=1e-5) and ratio > 0


def test_the_one_run_measured_per_net_is_the_one_named(tmp_path, monkeypatch):
    """Gradient flow and F(x)+x measure each net's first finished run: their footers and provenance name that run
    and its seed, not the seeds they did not measure (results/tenth's said 'seeds 0,1,2' over seed 0's numbers)."""
    import json

    from test_report import fake_run

    from resnet_repro.report import figure7, make_report
    from resnet_repro.report import gradients as report_gradients

    for arch in ("plain", "resnet"):
        for seed in (1, 0, 2):
            fake_run(tmp_path, arch, 20, seed, {"train": [0.5, 0.4], "test": [0.5, 0.4]})
    measured = []

    def norms(run, data_root=None):
        measured.append(run["run"])
        return pd.DataFrame(
            [
                {"run": run["run"], "net": run["net"], "arch": run["arch"], "depth": 20, "shortcut": run["shortcut"]}
                | {"block": "basic", "step": step, "source": "s", "kind": kind, "index": i, "name": f"l{i}"}
                | {"norm": 1.0 + i, "rms": 1.0}
                for step in (0, 2000)
                for kind in ("weight", "output")
                for i in range(1, 4)
            ]
        )

    def ratios(run, data_root=None, announce=None):
        measured.append(run["run"])
        return pd.DataFrame(
            {"run": run["run"], "net": run["net"], "arch": run["arch"], "depth": 20, "shortcut": run["shortcut"]}
            | {"block": "basic", "index": range(1, 4), "ratio": [0.5, 0.6, 0.7]}
        )

    footers = {}

    def keep(fig, title, footer, out, name, finish=report_gradients.finish):
        footers[name] = footer
        return finish(fig, title, footer, out, name)

    monkeypatch.setattr(report_gradients, "run_gradient_norms", norms)
    monkeypatch.setattr(report_gradients, "run_residual_ratios", ratios)
    monkeypatch.setattr(report_gradients, "finish", keep)
    monkeypatch.setattr(figure7, "run_response_stds", lambda run, *a, **k: [1.0] * 18)
    make_report(tmp_path, tmp_path / "report", verbose=False)  # Figure 7 on: these come with it
    assert sorted(measured) == ["hand/plain-20/seed0"] * 2 + ["hand/resnet-20/seed0"] * 2
    assert set(footers) == {"gradients-20", "residuals"}
    for footer in footers.values():
        assert "seeds 0 " in footer and "0,1,2" not in footer and "3 runs" not in footer
    provenance = json.loads((tmp_path / "report" / "provenance.json").read_text())["artifacts"]
    for name in ("gradients", "residuals"):
        assert [r["run"] for net in provenance[name]["nets"] for r in net["runs"]] == [
            "hand/plain-20/seed0",
            "hand/resnet-20/seed0",
        ]
    assert len(provenance["curves"]["nets"][0]["runs"]) == 3  # the curves keep every seed
    claims = (tmp_path / "report" / "claims.md").read_text()  # a claim made on one seed says so
    assert "plain-20 (one run, seed 0): step 0:" in claims and "ResNet-20 (one run, seed 0): step 0:" in claims
