"""`python -m resnet_repro.campaign ...`: see cli.py."""

import sys

from resnet_repro.campaign.cli import main

if __name__ == "__main__":
    sys.exit(main())
