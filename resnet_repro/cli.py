"""The command line: `python run.py ...` in a checkout, `python -m resnet_repro ...` or `resnet-repro ...`
wherever the package is installed. The same Hydra app in each, reading the configs inside the package.

    python -m resnet_repro arch=plain depth=20                    # one run
    python -m resnet_repro -m experiment=quick data.root=...      # a sweep, then its report
    python -m resnet_repro -m experiment=quick dry_run=true       # its plan (plan.py): nothing is trained

A bad setting ends the command before any work with one line on stderr and exit status 2: the
settings `config.resolve` refuses, and the overrides Hydra cannot apply (a misspelt key, dept=20,
with the nearest valid key).
"""

from __future__ import annotations

import os
import sys

from .plan import DRY_RUN_ARGS
from .threads import use_project_thread_env


def main() -> None:
    # Before torch is first imported (by the imports below): OpenMP reads the environment then, once.
    use_project_thread_env()
    if any(arg in DRY_RUN_ARGS for arg in sys.argv[1:]):  # before Hydra: a dry run launches no job
        from .plan import main as plan

        plan(sys.argv[1:])
    import hydra
    from hydra.errors import CompactHydraException

    from .config import CONF_DIR, hydra_error_line
    from .sweep import run_job

    app = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(run_job)
    # Hydra prints its own errors (several lines, exit 1) unless HYDRA_FULL_ERROR is set; set, they reach
    # us, and an override it cannot apply becomes one line. Other errors still show their traceback.
    user_choice = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    except CompactHydraException as e:
        if user_choice == "1":
            raise
        print(f"error: {hydra_error_line(e)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if user_choice is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = user_choice
