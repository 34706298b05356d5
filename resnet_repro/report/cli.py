"""python -m resnet_repro.report <runs folder> [-o <out>]: the report of any folder of runs, at any time.

Exit status: 0 the report is complete; 1 it left something out (a damaged run, unreadable final weights,
an artifact that failed: the summary names each, with its fix) or there was nothing to report; 2 no runs
folder or a bad argument.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import torch

from ..devices import analysis_device
from .build import ReportFolderError, make_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_repro.report",
        description="The paper's artifacts from run directories: Figure 1, Figure 6, Table 6, Figure 7, "
        "the claims table, with provenance and an index page.",
    )
    parser.add_argument("root", help="a runs folder (out_dir) or one sweep's folder")
    parser.add_argument("-o", "--out", help="where the artifacts go (default: <root>/report)")
    parser.add_argument(
        "--ymax",
        type=float,
        default=None,
        help="top of the error axis in %% (default: 20 as the paper for full-length runs, raised where a curve "
        "is higher past the first tenth of training, with a second row on the paper's 0-20%%; for shortened runs, "
        "enough to show every curve)",
    )
    parser.add_argument("--data-root", help="CIFAR-10 location for Figure 7, instead of each run's data.root")
    parser.add_argument("--device", default="auto", help="device for Figure 7's forward passes: auto, cpu, cuda")
    parser.add_argument(
        "--figure7-images", type=int, help="use a fixed random N of the test images for Figure 7 (faster)"
    )
    parser.add_argument("--no-figure7", action="store_true", help="skip Figure 7 (it runs every final checkpoint)")
    args = parser.parse_args(argv)
    if args.ymax is not None and args.ymax <= 0:
        parser.error(f"--ymax {args.ymax:g} must be positive, e.g. --ymax 100")
    if args.figure7_images is not None and args.figure7_images <= 0:
        parser.error(f"--figure7-images {args.figure7_images} must be positive, or left out for all test images")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            parser.error(f"--device {device}: no CUDA device here; use --device cpu (or auto)")
    except RuntimeError:
        parser.error(f"--device {device} is not a device torch knows; use auto, cpu or cuda")
    command = " ".join(["python -m resnet_repro.report", *(argv if argv is not None else sys.argv[1:])])
    try:
        with analysis_device(device) if not args.no_figure7 else contextlib.nullcontext(device) as device:
            report = make_report(
                args.root,
                args.out,
                args.ymax,
                not args.no_figure7,
                args.data_root,
                device,
                args.figure7_images,
                command=command,
            )
    except (FileNotFoundError, ReportFolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if report.complete else 1  # 1: nothing to report, or something left out (the summary names it)
