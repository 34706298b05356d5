"""`python -m resnet_repro.campaign ...`: see cli.py."""

import os
import sys

from resnet_repro.campaign.cli import main

if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()  # a buffered listing meets a closed pipe here, inside the try, not at exit
    except BrokenPipeError:
        # `status | head`: the reader has what it wanted. Python's recipe: send what is still buffered to
        # /dev/null, so that the flush at exit cannot raise again, and exit 1 as a cut-short listing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code)
