"""The paper's artifacts from run directories: Figure 1, Figure 6, Table 6, Figure 7, the claims table.

    python -m resnet_repro.report experiments/fig6 -o experiments/fig6/report

Writes every artifact the runs allow (figures as PNG and PDF, tables as Markdown and CSV,
provenance.json beside them, and README.md, an index page showing them all) and says which it
skipped and why, and which runs it left out (damaged, each with its fix; the command then exits 1).
It reads runs through `results` only, needs no GPU, and runs at the end of every sweep through
`ReportCallback` (see conf/config.yaml; `report=false` turns it off).

How a curve gets from training to a figure: a run writes metrics.csv (runs.RunDir) ->
results.load_results reads every run once (curves + one row per run) -> nets.group_runs groups
the runs of one configuration of a net (NetRuns) -> figures / figure7 / tables / claims draw
and compute from those -> build.make_report writes them, index.py lists them.

    nets.py        runs -> one configuration per net (NetRuns)
    style.py       how figures look; the drawing they share
    figures.py     Figure 1, Figure 6
    figure7.py     Figure 7 (layer responses, from the final weights)
    tables.py      Table 6
    claims.py      the paper's claims checked against the runs
    provenance.py  data, steps, seeds, code: footers and provenance.json's entries
    index.py       README.md, the index page
    build.py       make_report: the order of it all
    cli.py, callback.py   python -m resnet_repro.report; the end-of-sweep Hydra callback
"""

from .build import ARTIFACTS, Report, make_report
from .callback import ReportCallback
from .cli import main
from .nets import NetRuns, group_runs
from .style import DPI, FIGSIZE, auto_ymax

__all__ = [
    "ARTIFACTS",
    "DPI",
    "FIGSIZE",
    "NetRuns",
    "Report",
    "ReportCallback",
    "auto_ymax",
    "group_runs",
    "main",
    "make_report",
]
