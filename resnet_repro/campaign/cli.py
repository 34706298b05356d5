"""The command line: `python -m resnet_repro.campaign start|status|stop|pause|continue|collect|carry|note <name>` (see the package's docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .store import HOME_ENV, CampaignError, home


def main(argv: list[str] | None = None) -> int:
    from . import carry, collect, launch, progress

    parser = argparse.ArgumentParser(
        prog="python -m resnet_repro.campaign", description="Long sweeps in the background, resumed across sessions."
    )
    parser.add_argument(
        "command", choices=["start", "stop", "status", "pause", "continue", "collect", "carry", "note", "_supervise"]
    )
    parser.add_argument("name", help="the campaign: conf/campaign/<name>.yaml (start also takes a .yaml path)")
    parser.add_argument("--data-root", help="CIFAR-10 for the runs (default: $CIFAR10_ROOT or ../shared/data's copy)")
    parser.add_argument("--results", help="where finished runs are copied (default: this checkout's results/)")
    parser.add_argument(
        "--update-code", action="store_true", help="start: move the pinned code to this checkout's HEAD"
    )
    parser.add_argument("--no-report", action="store_true", help="collect: copy runs and write RUN.md only")
    parser.add_argument(
        "--report-all",
        action="store_true",
        help="collect: remake every experiment's report, also those with no newly collected run",
    )
    parser.add_argument(
        "--text", help="note: one line for RUN.md, what the campaign's events cannot say (a run lost with a machine)"
    )
    parser.add_argument("--experiment", help="note: only the RUN.md of results/<experiment>/ (default: each one)")
    parser.add_argument("--home", help=f"campaigns folder (default: ${HOME_ENV} or ~/resnet-repro-campaigns)")
    args = parser.parse_args(argv)
    root = Path(args.home).expanduser() if args.home else None
    try:
        if args.command == "start":
            return launch.start(args.name, args.data_root, args.results, args.update_code, root)
        if args.command == "_supervise":
            return launch.supervise(args.name, root or home())
        if args.command == "stop":
            launch.stop(args.name, root)
        elif args.command in ("pause", "continue"):
            launch.pause(args.name, args.command == "continue", root)
        elif args.command == "collect":
            collect.collect(args.name, root, report=not args.no_report, report_all=args.report_all)
        elif args.command == "carry":
            carry.pack(args.name, root)
        elif args.command == "note":
            collect.note(args.name, args.text, args.experiment, root)
        if args.command in ("stop", "status"):
            progress.status(args.name, root)
        return 0
    except CampaignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
