"""`python -m resnet_repro.report ...`: see cli.py."""

from resnet_repro.entry import exit_with
from resnet_repro.report.cli import main

if __name__ == "__main__":
    exit_with(main)
