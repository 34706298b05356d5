"""Campaigns: long sweeps that outlive the shell, and the session, that started them.

    python -m resnet_repro.campaign start evidence     # start, or resume where it stopped
    python -m resnet_repro.campaign status evidence    # runs done, iterations, ETA
    python -m resnet_repro.campaign stop evidence      # every run checkpoints its step and exits
    python -m resnet_repro.campaign pause evidence     # SIGSTOP (for a benchmark); `continue` resumes
    python -m resnet_repro.campaign collect evidence   # finished runs -> results/<experiment>/, report, RUN.md
    python -m resnet_repro.campaign carry evidence     # a stopped campaign -> campaigns/evidence.tar, to commit
    python -m resnet_repro.campaign note evidence --text "..."   # a line for RUN.md the events cannot say

A campaign is a list of runs (conf/campaign/<name>.yaml) trained in the background at the
lowest priority (nice 19), `jobs` at a time, each a plain `run.py` process. It lives outside the
work tree, in `$RESNET_REPRO_CAMPAIGNS/<name>/` (default `~/resnet-repro-campaigns/<name>/`):

    campaign.json    the definition as started: runs, jobs, threads, data, the pinned commit
    code/            a clone of the repository at that commit: editing the checkout never
                     changes a run halfway (`start --update-code` moves it to the current HEAD)
    runs/<experiment>/<arch>-<depth>/seed<k>/   ordinary run directories (resume exactly after a kill)
    logs/            one log per run, and the supervisor's
    events.jsonl     every start, stop and run exit, with the commit and the CPU it ran on

Each run that finishes is copied into `<results>/<experiment>/runs/` of the checkout that
started the campaign (config, status, metrics, provenance, final weights; never a checkpoint),
ready to commit; `collect` does the same for all of them and regenerates the report and RUN.md.

A campaign's folder lives on one machine. To go on elsewhere (a new machine that has only the
checkout), `carry` packs the stopped campaign into the checkout's `campaigns/<name>.tar` (unfinished
runs with their checkpoints, finished runs as their record); commit it, and `start` on a machine
without the campaign unpacks it and resumes.

The modules: `store` (a campaign's folder and what is in it), `launch` (start, the supervisor,
stop, pause), `progress` (status and ETA), `collect` (into results/), `carry` (from one machine to
the next in the checkout), `cli` (the command line).
"""

from .cli import main
from .store import Campaign, CampaignError, Run

__all__ = ["Campaign", "CampaignError", "Run", "main"]
