"""`python -m resnet_repro.campaign ...`: see cli.py."""

from resnet_repro.campaign.cli import main
from resnet_repro.entry import exit_with

if __name__ == "__main__":
    exit_with(main)
