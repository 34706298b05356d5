"""The LightningModule: one SGD step, the paper's iteration schedule, the ResNet-110 warm-up.

Counters live on the device and are read only at log points, so a step never
waits on the host (no per-step .item()). They count in float64, exact for any run's counts, except on
MPS, which holds no float64: float32 there, exact up to 2**24 images between two log points.
"""

from __future__ import annotations

import os

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn


def lr_factor(step: int, steps: int, milestones: list[float], decay: float) -> float:
    """Multiplier of the base lr at `step`: divided by 1/decay at each milestone (fractions of `steps`)."""
    return decay ** sum(step >= round(m * steps) for m in milestones)


def compiled(model: nn.Module, compile: str) -> nn.Module:
    """`model`, compiled once with static shapes (batches are all alike: drop_last), or `model` itself.

    compile, as the RunSpec resolves trainer.compile (config.py): "false" (eager), "true"
    (torch.compile's default mode) or a mode name: "reduce-overhead" or "max-autotune", which add
    CUDA graphs on a GPU. The compiled step computes what the eager step does within float
    tolerance (tests/test_fast_path.py): a speed switch only.
    """
    if compile == "false":
        return model
    # A new network starts from a clean compiler. Dynamo keeps what it compiled per code object, and
    # every network of a sweep shares one (the model class's forward): in one process (Hydra's basic
    # launcher runs a whole sweep in one), the 9th network would hit its recompile limit and silently
    # train eager. What is dropped belongs to networks built before: a run trains one (the benchmark,
    # which keeps several, compiles an earlier one again in its warm-up steps).
    torch._dynamo.reset()
    return torch.compile(model, mode=None if compile == "true" else compile, dynamic=False)


def compile_workers(on_gpu: bool, runs_per_gpu: int) -> int:
    """Inductor's compile workers for one run: its share of the cores. Inductor's default, min(32, cores)
    in every process, makes a 16-job sweep start 16 x cores workers at once. On a CPU the share is the
    run's own thread count (trainer.threads, or the cores // n_jobs joblib gives each worker); on GPUs,
    the cores over the runs that can train at once (runs_per_gpu on each visible GPU)."""
    share = torch.get_num_threads()
    if on_gpu:
        share = min(share, (os.cpu_count() or 1) // max(1, torch.cuda.device_count() * runs_per_gpu))
    return max(1, min(32, share))


def limit_compile_workers(on_gpu: bool, runs_per_gpu: int) -> None:
    """Sets compile_workers() as Inductor's pool size, before the first compile creates the pool, unless
    the user set TORCHINDUCTOR_COMPILE_THREADS (theirs wins; the campaign sets 1)."""
    if "TORCHINDUCTOR_COMPILE_THREADS" not in os.environ:
        import torch._inductor.config

        torch._inductor.config.compile_threads = compile_workers(on_gpu, runs_per_gpu)


class Classifier(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        steps: int,
        lr: float,
        momentum: float,
        weight_decay: float,
        lr_milestones: list[float],
        lr_decay: float,
        warmup: bool = False,
        warmup_lr: float = 0.01,
        warmup_until_train_error: float = 0.8,
        warmup_check_every: int = 50,
        channels_last: bool = True,
        compile: str = "false",
        accelerator: str = "cpu",
    ):
        super().__init__()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        # Kept out of the module registry, so the state dict holds the weights once.
        object.__setattr__(self, "forward_fn", compiled(model, compile))
        self.steps, self.lr, self.momentum, self.weight_decay = steps, lr, momentum, weight_decay
        self.lr_milestones, self.lr_decay = list(lr_milestones), lr_decay
        self.warmup_lr, self.warmup_until, self.warmup_check_every = (
            warmup_lr,
            warmup_until_train_error,
            warmup_check_every,
        )
        self.warmup_active = warmup
        self.warmup_ended_at: int | None = None
        self.progress: dict[str, str] = {}  # latest errors, for the progress bar
        self.lr_used = lr  # the lr of the latest step (the scheduler has already moved on when hooks run)
        # [wrong, seen, loss sum] since the last log point, and since the last warm-up check
        counts = torch.float32 if accelerator == "mps" else torch.float64
        self.register_buffer("train_counts", torch.zeros(3, dtype=counts))
        self.register_buffer("warmup_counts", torch.zeros(2, dtype=counts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_fn(x)

    def lr_at(self, step: int) -> float:
        if self.warmup_active:
            return self.warmup_lr
        return self.lr * lr_factor(step, self.steps, self.lr_milestones, self.lr_decay)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(
            self.model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        # Stepped every iteration: the paper's schedule is in iterations, not epochs.
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.lr_at(step) / self.lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def training_step(self, batch, batch_idx):
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            wrong = (logits.argmax(1) != labels).sum()
            self.train_counts[0] += wrong
            self.train_counts[1] += len(labels)
            self.train_counts[2] += loss.detach() * len(labels)
            if self.warmup_active:
                self.warmup_counts[0] += wrong
                self.warmup_counts[1] += len(labels)
        self.lr_used = self.optimizers().param_groups[0]["lr"]
        # Decided inside the step, not in a later hook: the checkpoint written at the end of
        # this step then holds the decision, so a resumed run warms up exactly as an uninterrupted one.
        done = self.global_step + 1  # steps done once this one's optimizer step is taken
        if self.warmup_active and done % self.warmup_check_every == 0:
            self.check_warmup(done)
        return loss

    def check_warmup(self, step: int) -> None:
        wrong, seen = self.warmup_counts.tolist()
        self.warmup_counts.zero_()
        # paper: 0.01 until training error < 80%, then 0.1; warmup.until_train_error=1 ends it at the first check
        if wrong / seen < self.warmup_until or self.warmup_until >= 1:
            self.warmup_active = False  # the scheduler, stepped after this step, sets the schedule's lr
            self.warmup_ended_at = step

    def pop_train_metrics(self) -> dict[str, float]:
        """Training error and loss over the augmented batches since the last call (one sync)."""
        wrong, seen, loss_sum = self.train_counts.tolist()
        self.train_counts.zero_()
        seen = max(seen, 1.0)
        return {"error": wrong / seen, "loss": loss_sum / seen}

    @torch.inference_mode()
    def evaluate(self, batches) -> dict[str, float]:
        """Error and mean loss on a whole split, in eval mode (BN running statistics)."""
        was_training = self.model.training
        self.model.eval()
        wrong = torch.zeros((), dtype=self.train_counts.dtype, device=self.device)  # float64 but on MPS
        loss_sum = torch.zeros_like(wrong)
        seen = 0
        with self.trainer.precision_plugin.forward_context() if self._trainer else torch.autocast("cpu", enabled=False):
            for images, labels in batches:
                logits = self.model(images).float()
                wrong += (logits.argmax(1) != labels).sum()
                loss_sum += F.cross_entropy(logits, labels, reduction="sum").to(loss_sum.dtype)
                seen += len(labels)
        self.model.train(was_training)
        return {"error": wrong.item() / seen, "loss": loss_sum.item() / seen}

    def on_save_checkpoint(self, checkpoint):
        checkpoint["warmup"] = {"active": self.warmup_active, "ended_at": self.warmup_ended_at}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("warmup", {})
        self.warmup_active = state.get("active", self.warmup_active)
        self.warmup_ended_at = state.get("ended_at")
