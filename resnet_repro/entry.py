"""How the package's listing commands end (`python -m resnet_repro.campaign`, `python -m resnet_repro.report`):
with their main's exit status, and quietly when whoever reads their output stops early (`... | head`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn


def exit_with(main: Callable[[], int]) -> NoReturn:
    try:
        code = main()
        sys.stdout.flush()  # a buffered listing meets a closed pipe here, inside the try, not at exit
    except BrokenPipeError:
        # The reader has what it wanted. Python's recipe: send what is still buffered to /dev/null, so that the
        # flush at exit cannot raise again, and exit 1 as a cut-short listing (the work it was doing stops too,
        # as `find | head` stops find).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code)
