"""Runs grouped into what the report draws: one configuration of each net.

The runs of one net (arch, depth, shortcut) whose learned settings are equal but for the seed
(`runs.configuration`, the rule resume uses too) form one configuration, drawn as the mean over
its runs with a min-max band. Where a root holds several configurations of one net (say a short
and a long sweep), the longest is used and the others are named in a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
from omegaconf import OmegaConf

from ..config import CONF_DIR
from ..models import Net
from ..results import Results
from ..runs import configuration, run_settings

# Settings that only change how often things are measured, not what is learned like the paper.
NOT_THE_PAPERS = {"eval_every", "log_every", "warmup.check_every"}
# Runs drawn: finished ones, and those still training or stopped (the legend says how far they are); not failed or diverged.
DRAWN = ("done", "running", "stopped")


@dataclass
class NetRuns:
    """One configuration of one net: its runs (rows of `Results.runs`), differing only by seed, and their curves."""

    net: Net
    steps: int
    runs: pd.DataFrame  # every run of this configuration, whatever its state
    curves: pd.DataFrame  # Results.curves rows of the usable runs
    differs: dict  # learned setting -> (ours, the paper's)

    @property
    def arch(self) -> str:
        return self.net.arch

    @property
    def depth(self) -> int:
        return self.net.depth

    @property
    def shortcut(self) -> str:
        return self.net.shortcut

    @property
    def cli_name(self) -> str:  # as a user types it: plain-56, resnet-110, resnet-56-B
        return self.net.cli_name

    @property
    def display_name(self) -> str:  # as the paper writes it: plain-56, ResNet-110, ResNet-56 (B)
        return self.net.display_name

    @property
    def usable(self) -> pd.DataFrame:
        return self.runs[self.runs.status.isin(DRAWN)]

    @property
    def done(self) -> pd.DataFrame:
        return self.runs[self.runs.status == "done"]


@lru_cache(maxsize=1)
def paper_settings() -> dict:
    """conf/config.yaml's learned settings (the paper's protocol; the configs ship inside the package)."""
    return configuration(run_settings(OmegaConf.load(CONF_DIR / "config.yaml")))


def settings_differing(settings: dict) -> dict:
    """Learned settings that are not the paper's, as {key: (ours, paper's)}; steps first."""
    papers = paper_settings()
    keys = (settings.keys() | papers.keys()) - NOT_THE_PAPERS - {"arch", "depth", "shortcut", "block"}
    return {
        k: (settings.get(k), papers.get(k))
        for k in sorted(keys, key=lambda k: (k != "steps", k))
        if settings.get(k) != papers.get(k)
    }


def group_runs(results: Results) -> tuple[list[NetRuns], list[str]]:
    """The nets of `results`, one configuration each (plain first, then by shortcut and depth), and
    notes on the runs left out."""
    runs = results.runs[results.runs.run.isin(results.curves.run)].sort_values("run")  # runs with metrics
    if "block" not in runs:  # no run read (a run's settings always have it)
        runs = runs.assign(block=pd.Series(dtype=object))
    nets, notes = [], []
    for (arch, depth, shortcut, block), of_net in runs.groupby(["arch", "depth", "shortcut", "block"], sort=False):
        net = Net(arch, int(depth), shortcut, block)
        # the longest configuration, then the one with most runs
        configs = sorted(of_net.groupby("configuration"), key=lambda kv: (-kv[1].steps.iloc[0], -len(kv[1]), kv[0]))
        settings, chosen = configs[0]
        for _, other in configs[1:]:
            notes.append(
                f"{net.cli_name}: left out {len(other)} run(s) with other settings (sweep {', '.join(sorted(set(other.sweep)))}, "
                f"steps={other.steps.iloc[0]}); report that sweep's folder to see them"
            )
        chosen = chosen.reset_index(drop=True)
        for r in chosen[~chosen.status.isin(DRAWN)].itertuples():
            notes.append(f"{net.cli_name} seed {r.seed}: {r.status} at step {r.last_step}; left out ({r.run})")
        curves = results.curves[results.curves.run.isin(chosen[chosen.status.isin(DRAWN)].run)]
        nets.append(NetRuns(net, int(chosen.steps.iloc[0]), chosen, curves, settings_differing(json.loads(settings))))
    nets.sort(key=lambda n: (n.arch != "plain", n.net.block, n.shortcut, n.depth))
    return nets, notes
