"""The fast path learns what the paper's protocol learns.

1. The batched augmentation (TrainBatches -> augment) has the paper's distribution: crop
   offsets uniform over the 9x9 positions, flips at 50%, independent of each other, and a
   padded border that is exactly zero in the network's input.
2. The training step as a run takes it (build_module + build_trainer: channels_last, compiled
   when enabled, Lightning's optimizer loop) computes the same loss, gradients and updated
   weights as a straightforward eager NCHW fp32 step on the same batches.
"""

from __future__ import annotations

import math
import subprocess
import sys
from unittest import mock

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import make_spec, tiny_overrides
from torch._dynamo.testing import CompileCounter
from torch._dynamo.utils import counters

from resnet_repro.config import COMPILE_AUTO_MIN_STEPS
from resnet_repro.data import PAD, TrainBatches
from resnet_repro.machine import Cpu, cpu_has_native_bf16
from resnet_repro.models import build_model
from resnet_repro.module import compiled
from resnet_repro.runs import RunDir
from resnet_repro.train import build_module, build_trainer, train
from resnet_repro.trainer_settings import cpu_kinds

POSITIONS = 2 * PAD + 1  # 9 crop offsets per axis


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper critical value of chi-square at p = 0.001 (z = 3.09), Wilson-Hilferty approximation."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi2(counts: torch.Tensor) -> float:
    expected = counts.sum() / counts.numel()
    return float(((counts - expected) ** 2 / expected).sum())


def pattern_images(n: int) -> torch.Tensor:
    """Channel 0 holds row+1, channel 1 column+1, channel 2 a constant: a crop shows where it was cut."""
    ar = torch.arange(1, 33, dtype=torch.uint8)
    image = torch.stack(
        [ar[:, None].expand(32, 32), ar[None, :].expand(32, 32), torch.full((32, 32), 7, dtype=torch.uint8)]
    )
    return image.expand(n, 3, 32, 32).clone()


def read_offsets(batch: torch.Tensor, mean: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dy, dx, flipped) of each augmented pattern image, from its centre pixels (never in the padding)."""
    values = ((batch + mean) * 255).round().long()
    dy = values[:, 0, 16, 16] - 13  # output row 16 reads padded row dy + 16 = source row dy + 12
    flipped = values[:, 1, 16, 17] < values[:, 1, 16, 16]
    dx = torch.where(flipped, values[:, 1, 16, 16] - 12, values[:, 1, 16, 16] - 13)
    return dy, dx, flipped


def test_augmentation_has_the_papers_distribution():
    mean = 3.5 / 255  # a non-zero mean: the padding must still be exactly zero after subtracting it
    n, batch_size, steps = 1024, 512, 32  # 16,384 crops from the training stream itself
    batches = iter(
        TrainBatches(
            pattern_images(n),
            torch.zeros(n, dtype=torch.long),
            torch.full((3, 32, 32), mean),
            batch_size=batch_size,
            seed=0,
        )
    )
    counts = torch.zeros(POSITIONS, POSITIONS, 2)
    for step in range(steps):
        images, _ = next(batches)
        dy, dx, flipped = read_offsets(images, mean)
        assert dy.min() >= 0 and dy.max() < POSITIONS and dx.min() >= 0 and dx.max() < POSITIONS
        counts.index_put_((dy, dx, flipped.long()), torch.ones(len(dy)), accumulate=True)
        if step < 4:
            assert images.is_contiguous(memory_format=torch.channels_last)
            # Padding: the rows and columns cut from the border are exactly 0, and only those.
            zeros = (images == 0).all(1).sum((1, 2))  # pixels that are 0 in every channel
            inside = (32 - (dy - PAD).abs()) * (32 - (dx - PAD).abs())
            assert torch.equal(zeros, 32 * 32 - inside)
            # Every other pixel is the image minus the mean (channel 2 holds 7 everywhere).
            ch2 = images[:, 2]
            assert ((ch2 == 0) | ((ch2 - (7 / 255 - mean)).abs() < 1e-6)).all()
    total = batch_size * steps
    assert counts.sum() == total
    # Offsets uniform over the 81 positions, each axis uniform over 9, flips at 1/2, independent.
    assert chi2(counts.sum(2)) < chi2_critical(POSITIONS**2 - 1)
    assert chi2(counts.sum((1, 2))) < chi2_critical(POSITIONS - 1)
    assert chi2(counts.sum((0, 2))) < chi2_critical(POSITIONS - 1)
    assert chi2(counts) < chi2_critical(2 * POSITIONS**2 - 1)
    flip_rate = counts[..., 1].sum() / total
    assert abs(flip_rate - 0.5) < 4 * 0.5 / math.sqrt(total)
    # Every offset with and without flip occurs: the 9x9 grid is covered, not a sub-grid.
    assert (counts > 0).all()


def test_stream_differs_between_steps_and_seeds():
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)

    def make(seed):
        return iter(TrainBatches(images, torch.zeros(256, dtype=torch.long), torch.zeros(3, 32, 32), 128, seed))

    a, b = make(0), make(1)
    first, second = next(a)[0], next(a)[0]
    assert not torch.equal(first, second) and not torch.equal(first, next(b)[0])


class Replay:
    """These batches, as an iterable like TrainBatches (a list would be taken for several loaders)."""

    def __init__(self, batches: list):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


class Capture(pl.Callback):
    """What the training path computes at each step: the state it starts from, its loss and gradients."""

    def __init__(self, steps: int):
        self.steps, self.states, self.losses, self.grads = steps, [], [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.states.append({k: v.detach().clone() for k, v in module.model.state_dict().items()})

    def on_before_optimizer_step(self, trainer, module, optimizer):  # after backward, before the update
        self.grads.append({n: p.grad.detach().clone() for n, p in module.model.named_parameters()})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        trainer.should_stop = trainer.global_step >= self.steps  # early in the paper's schedule: lr 0.1


def eager_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """The plain textbook step: NCHW contiguous fp32, eager."""
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(images.contiguous()), labels)
    loss.backward()
    return loss.item(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def eager_training(
    model: torch.nn.Module, batches: list, lr: float, momentum: float, weight_decay: float
) -> list[float]:
    """The plain textbook loop: eager NCHW steps and torch's SGD with the paper's settings."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    losses = []
    for images, labels in batches:
        losses.append(eager_step(model, images, labels)[0])
        optimizer.step()
    return losses


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12))


def flat(tensors: dict[str, torch.Tensor], names) -> torch.Tensor:
    return torch.cat([tensors[n].double().flatten() for n in names])


# Float tolerances (loss, all gradients, one gradient or weight tensor, all weights after 3 steps),
# from measurements at depth 8 against a float64 step. fp32: the gradients of an eager NCHW step are
# off by ~2e-5 (norm of all of them), those of the compiled channels_last step by ~2e-5, those of the
# eager channels_last step by ~7e-4 (its CPU batch-norm kernel sums in float32), single small tensors
# (a BN bias) by up to ~6e-3; after 3 steps at lr 0.1 the eager channels_last weights are ~1e-5 from
# the NCHW ones, a BN bias that started at 0 ~1e-2. bf16-mixed (convolutions in bf16, 8-bit mantissa;
# BN statistics, loss and weights in fp32): loss ~1e-4, gradients ~5e-2, a single gradient tensor up to
# ~0.2, weights after 3 steps ~7e-4. A real difference (a shifted crop, a missing BN statistic, a
# transposed memory layout) is of order 1.
TOLERANCES = {
    "32-true": {"loss": 1e-5, "grads": 5e-3, "tensor": 3e-2, "weights": 3e-4},
    "bf16-mixed": {"loss": 1e-3, "grads": 1e-1, "tensor": 3e-1, "weights": 3e-3},
}
FP32 = "trainer.precision=32-true"


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        [FP32, "trainer.compile=true"],
        [FP32, "trainer.channels_last=true", "trainer.compile=false"],
        [FP32, "trainer.channels_last=false", "trainer.compile=false"],
        ["trainer.precision=bf16-mixed", "trainer.compile=false"],
        # The CUDA-graph modes of a GPU run on a CPU too (Inductor skips the graphs there): their
        # code paths in Lightning's loop and the compiled step are exercised, if not their graphs.
        [FP32, "trainer.compile=reduce-overhead"],
        [FP32, "trainer.compile=max-autotune"],
    ],
    ids=[
        "default-config",
        "compiled-fp32",
        "eager-channels-last",
        "eager-nchw",
        "bf16-mixed",
        "reduce-overhead",
        "max-autotune",
    ],
)
def test_fast_step_matches_eager_nchw_step(tmp_path, overrides):
    steps = 3
    spec = make_spec(
        ["arch=resnet", "depth=8", "trainer.progress_bar=false", "trainer.accelerator=cpu", *overrides],
        check_data=False,
    )
    tol = TOLERANCES[spec.trainer.precision]
    torch.manual_seed(0)
    module = build_module(spec)
    reference = build_model("resnet", 8)
    start = {k: v.clone() for k, v in module.model.state_dict().items()}
    images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (512,))
    stream = iter(
        TrainBatches(
            images,
            labels,
            images.float().mean(0) / 255,
            spec.batch_size,
            seed=0,
            channels_last=spec.trainer.channels_last,
        )
    )
    batches = [next(stream) for _ in range(steps)]

    capture = Capture(steps)
    trainer = build_trainer(spec, tmp_path, callbacks=[capture])
    trainer.fit(module, train_dataloaders=Replay(batches))
    assert trainer.global_step == steps == len(capture.grads)

    # Each step, from the very state the training path started it in: same loss, same gradients.
    names = [n for n, _ in reference.named_parameters()]
    worst = {"loss": 0.0, "grads": 0.0, "tensor": 0.0, "weights": 0.0}
    for step, (images, labels) in enumerate(batches):
        reference.load_state_dict(capture.states[step])
        loss, grads = eager_step(reference, images, labels)
        assert capture.losses[step] == pytest.approx(loss, rel=tol["loss"])
        error = relative_error(flat(capture.grads[step], names), flat(grads, names))
        assert error < tol["grads"], f"step {step}: gradients differ by {error:.1e}"
        for name in names:
            assert relative_error(capture.grads[step][name], grads[name]) < tol["tensor"], f"step {step}: {name}"
        worst["loss"] = max(worst["loss"], abs(capture.losses[step] - loss) / abs(loss))
        worst["grads"] = max(worst["grads"], error)
        worst["tensor"] = max([worst["tensor"], *(relative_error(capture.grads[step][n], grads[n]) for n in names)])

    # The whole loop (Lightning's optimizer, the lr schedule) against torch's SGD in a plain loop.
    reference.load_state_dict(start)
    losses = eager_training(
        reference, batches, lr=spec.optim.lr, momentum=spec.optim.momentum, weight_decay=spec.optim.weight_decay
    )
    fast, ref = module.model.state_dict(), reference.state_dict()
    floats = [n for n, v in ref.items() if v.is_floating_point()]  # weights and BN running statistics
    if not spec.trainer.channels_last and module.forward_fn is module.model and spec.trainer.precision == "32-true":
        # The same kernels in the same order: the Lightning path is bit for bit the plain loop.
        assert capture.losses == losses and all(torch.equal(fast[n], ref[n]) for n in ref)
    assert capture.losses == pytest.approx(losses, rel=tol["loss"])
    error = relative_error(flat(fast, floats), flat(ref, floats))
    worst["weights"] = error
    print(f"{overrides} ({spec.trainer.precision}): worst relative errors {worst}")
    assert error < tol["weights"]
    for name in floats:
        assert relative_error(fast[name], ref[name]) < tol["tensor"], f"{name} differs after {steps} steps"
    assert all(torch.equal(fast[n], ref[n]) for n in ref if n not in floats)  # num_batches_tracked


ZEN3 = Cpu("AMD EPYC", "25", "1", ("avx2", "fma"), "AuthenticAMD", 2450.0)
ZEN4 = Cpu("AMD EPYC", "25", "17", ("avx512f", "avx512_bf16"), "AuthenticAMD", 2600.0)
ZEN5 = Cpu("AMD EPYC", "26", "2", ("avx512f", "avx512_bf16"), "AuthenticAMD", 2696.0)


def cpu_kind(cpu: Cpu):
    """As if this process ran on `cpu` (trainer_settings.py reads it for compile=auto)."""
    return mock.patch("resnet_repro.trainer_settings.read_cpu", lambda: cpu)


def test_every_cpu_kind_listed_says_both_precisions():
    kinds = cpu_kinds()
    assert {"AuthenticAMD-f25m17", "AuthenticAMD-f26m2"} <= set(kinds)
    settings = {"compile_fp32", "compile_bf16", "keep_freed_memory"}
    assert all({"compile_fp32", "compile_bf16"} <= set(measured) <= settings for measured in kinds.values())


def keep_setting(overrides: list[str]) -> bool:
    return make_spec(overrides, check_data=False).trainer.keep_freed_memory


def test_freed_memory_is_kept_by_default_only_where_it_measured_faster():
    with cpu_kind(ZEN5):  # measured faster there (conf/cpu_kinds.yaml)
        assert keep_setting([]) is True
        assert keep_setting(["trainer.keep_freed_memory=false"]) is False
    with cpu_kind(ZEN4):  # not measured there
        assert keep_setting([]) is False
        assert keep_setting(["trainer.keep_freed_memory=true"]) is True


# In a child process (the setting is process-wide, for good): four 16-MB activations written and
# freed, then how much of them the process still holds. Held, the next step reuses them; handed back,
# the next step faults every 4-KB page in again (measured: 134,000 faults a ResNet-56 step, ~100 kept).
FREED = """
import sys, torch
from resnet_repro.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
before = resident()
activations = [torch.ones(4 << 20) for _ in range(4)]
del activations
print(kept, (resident() - before) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux")
def test_freed_activations_stay_in_the_process_for_the_next_step():
    def held_mb(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", FREED, mode], capture_output=True, text=True, check=True)
        kept, mb = out.stdout.split()
        return kept, int(mb)

    assert held_mb("keep") == ("True", pytest.approx(64, abs=4))
    kept, held = held_mb("default")
    assert kept == "False" and held < 8, "glibc's defaults hand freed activations back to the kernel"


def compile_setting(overrides: list[str]) -> str:
    return make_spec(overrides, check_data=False).trainer.compile


def precision(overrides: list[str]) -> str:
    return make_spec(overrides, check_data=False).trainer.precision


def test_compile_setting():
    model = build_model("resnet", 8)
    assert compiled(model, "false") is model
    assert compiled(model, "true") is not model
    fp32 = ["trainer.accelerator=cpu", "trainer.precision=32-true"]
    bf16 = ["trainer.accelerator=cpu", "trainer.precision=bf16-mixed"]
    with cpu_kind(ZEN4):
        # auto: an fp32 run long enough to pay back the compile time is compiled, a short one not.
        assert compile_setting([*fp32, f"steps={COMPILE_AUTO_MIN_STEPS - 1}"]) == "false"
        assert compile_setting([*fp32, f"steps={COMPILE_AUTO_MIN_STEPS}"]) == "true"
        full, short = (
            build_module(make_spec(fp32, check_data=False)),
            build_module(make_spec([*fp32, "steps=600", "eval_every=200"], check_data=False)),
        )
        assert full.forward_fn is not full.model and short.forward_fn is short.model
        # bf16 on Zen 4: the compiled step measured slower, so auto stays eager at any length.
        assert compile_setting(bf16) == "false"
        assert compile_setting([*bf16, "trainer.compile=true"]) == "true"
    with cpu_kind(ZEN5):  # measured faster there in both precisions
        assert compile_setting(fp32) == "true" and compile_setting(bf16) == "true"
    with cpu_kind(ZEN3):  # not measured: eager, unless asked
        assert compile_setting(fp32) == "false" and compile_setting([*fp32, "trainer.compile=true"]) == "true"
    # Every spelling that leaves the model eager resolves to "false", so a caller's `!= "false"` means compiled;
    # every spelling of torch.compile's default mode resolves to "true"; a mode keeps its name.
    assert all(
        compile_setting([f"trainer.compile={v}"]) == "false" for v in ("false", "off", "none", "0", "null", "OFF")
    )
    assert all(compile_setting([f"trainer.compile={v}"]) == "true" for v in ("true", "1", "default"))
    assert compile_setting(["trainer.compile=max-autotune"]) == "max-autotune"


def test_precision_setting(monkeypatch):
    assert precision(["trainer.accelerator=cpu"]) == ("bf16-mixed" if cpu_has_native_bf16() else "32-true")
    assert precision(["trainer.accelerator=cpu", "trainer.precision=32"]) == "32-true"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # resolving looks for a GPU; none is used here
    monkeypatch.setattr("torch.cuda.get_device_capability", lambda device=None: (8, 0))  # an A100: bf16 native
    assert precision(["trainer.accelerator=cuda"]) == "bf16-mixed"
    assert precision(["trainer.accelerator=cuda", "trainer.precision=32-true"]) == "32-true"
    assert precision(["trainer.accelerator=auto"]) == "bf16-mixed"


class CountHostReads(pl.Callback):
    """Counts, between the start of step `first` and the end of step `last`, every Python-level read of a
    tensor's value on the host (.item(), .tolist(), bool/float/int of a tensor, .numpy()): on a GPU each
    one would make the step wait for the device."""

    NAMES = ("item", "tolist", "__bool__", "__float__", "__int__", "numpy")

    def __init__(self, monkeypatch, first: int, last: int):
        self.first, self.last, self.on, self.reads = first, last, False, []
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _name=name, _original=original, **kwargs):
                if self.on:
                    self.reads.append(_name)
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.on = self.on or batch_idx == self.first

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.on = self.on and batch_idx != self.last


@pytest.mark.parametrize("compile", ["false", "true"])
def test_training_steps_never_wait_for_the_device(tmp_path, monkeypatch, compile):
    """The per-step path (data, step, counters, lr schedule, progress bar), eager or compiled, reads nothing
    back from the device."""
    steps = 24
    spec = make_spec(
        [
            "arch=resnet",
            "depth=8",
            "batch_size=16",
            f"steps={steps}",
            f"eval_every={steps}",
            f"trainer.compile={compile}",
            "trainer.accelerator=cpu",
            "trainer.precision=32-true",
            "trainer.progress_bar=true",
        ],
        check_data=False,
    )
    module = build_module(spec)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    counter = CountHostReads(monkeypatch, first=1, last=steps - 2)  # the progress bar refreshes at steps 10 and 20
    trainer = build_trainer(spec, tmp_path, callbacks=[counter])
    batches = TrainBatches(
        images,
        torch.randint(0, 10, (256,)),
        images.float().mean(0) / 255,
        spec.batch_size,
        seed=0,
        start_step=lambda: trainer.global_step,
    )
    trainer.fit(module, train_dataloaders=batches)
    assert trainer.global_step == steps
    assert counter.reads == []
    assert module.pop_train_metrics()["error"] >= 0  # the counters are read at log points: one read for all steps


def count_compiled_frames(monkeypatch) -> CompileCounter:
    """Makes the project's torch.compile trace with Dynamo as always but hand its graphs to a counter
    (run eagerly) instead of Inductor: guards, caches and recompile limits are Dynamo's, so what is
    counted is what a GPU run would compile, in a fraction of the time."""
    counter = CompileCounter()
    real = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda model, mode=None, dynamic=None: real(model, backend=counter, dynamic=dynamic)
    )
    return counter


def test_a_sweep_of_ten_networks_in_one_process_compiles_every_one(monkeypatch):
    """Hydra's basic launcher runs a whole sweep in one process; Dynamo's recompile limit (8 per code
    object, and every network shares the model class's forward) must not leave the 9th network eager."""
    counter = count_compiled_frames(monkeypatch)
    images = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    for arch, depth in [(a, d) for d in (8, 14, 20, 26, 32) for a in ("plain", "resnet")]:
        spec = make_spec(
            [f"arch={arch}", f"depth={depth}", "trainer.compile=true", "trainer.accelerator=cpu"], check_data=False
        )
        module = build_module(spec)
        before = counter.frame_count
        module(images).sum().backward()
        assert counter.frame_count == before + 1, f"{arch}-{depth} ran eager: the recompile limit was hit"


def test_no_recompiles_within_a_run(tiny_batches, tmp_path, monkeypatch):
    """One compiled graph for the whole run: across the end of the warm-up, both lr drops, evaluations
    (eager, in eval mode) and checkpoints, the training step is never compiled again."""
    counter = count_compiled_frames(monkeypatch)
    recompiles = counters["recompiles"].copy()
    spec = make_spec(
        [
            "arch=resnet",
            "depth=8",
            "trainer.compile=true",
            *tiny_overrides(tiny_batches, tmp_path),
            "steps=12",
            "eval_every=3",
            "warmup.enabled=true",
            "warmup.until_train_error=1",
            "warmup.check_every=2",
        ]
    )
    assert train(spec) == "done"
    rows = RunDir(spec.run_dir).read_metrics()
    lrs = sorted({float(r["lr"]) for r in rows})
    assert len(lrs) >= 3 and min(lrs) < 0.01 < max(lrs), f"the run crossed the warm-up's end and the lr drops: {lrs}"
    assert counter.frame_count == 1, f"compiled {counter.frame_count} times"
    assert counters["recompiles"] == recompiles
