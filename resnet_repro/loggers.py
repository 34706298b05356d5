"""Loggers besides the run's own metrics.csv: the `logger` config group (conf/logger/), several at once.

    python run.py logger=tensorboard ...        python run.py -m logger=[csv,wandb] ...

Each is an optional dependency: a missing package is one line naming the pip command, when the run is
resolved, before any work. Each gets the numbers written to metrics.csv and the run's settings.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .spec import ConfigError

# name -> (the package it needs, or None; the pip extra that brings it)
PACKAGES = {"csv": None, "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def check(choice) -> tuple[str, ...]:
    """The loggers a run's `logger` config names (None: none); ConfigError naming the fix for a missing package."""
    names = tuple(choice or ())
    for name in names:
        if name not in PACKAGES:
            raise ConfigError(f"logger {name} is unknown; use logger=NAME, NAME one of {', '.join(PACKAGES)}")
        package = PACKAGES[name]
        if package is not None and importlib.util.find_spec(package) is None:
            others = [n for n in names if n != name]
            instead = f"logger=[{','.join(others)}]" if others else "no logger= at all"
            raise ConfigError(
                f"logger={name} needs the {package} package: pip install {package} "
                f"(or pip install 'resnet-repro[{name}]'), or run with {instead}"
            )
    return names


def build(choice, run_dir: Path, run_id: str) -> list:
    """Lightning's loggers for the run's `logger` config, writing beside (or for) the run in `run_dir`."""
    from pytorch_lightning import loggers

    made = []
    for name, settings in (choice or {}).items():
        settings = dict(settings or {})
        if name == "csv":
            made.append(loggers.CSVLogger(save_dir=str(run_dir), name="csv", version=""))
        elif name == "tensorboard":
            made.append(
                loggers.TensorBoardLogger(
                    save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False
                )
            )
        elif name == "wandb":
            mode = settings.get("mode")
            made.append(
                loggers.WandbLogger(
                    project=settings.get("project"),
                    name=run_id,
                    save_dir=str(run_dir),
                    **({"mode": mode} if mode else {}),
                )
            )
        elif name == "mlflow":
            made.append(
                loggers.MLFlowLogger(
                    experiment_name=settings.get("experiment"),
                    run_name=run_id,
                    tracking_uri=_tracking_uri(settings.get("tracking_uri")),
                )
            )
    return made


def _tracking_uri(uri) -> str | None:
    """A local folder as MLflow's file store URI (file:/abs/path); a server's URL as it is."""
    if uri is None or "://" in str(uri) or str(uri).startswith("file:"):
        return uri
    return Path(str(uri)).expanduser().resolve().as_uri()


def finish(made: list) -> None:
    """End the runs the loggers opened: W&B keeps its run open until the process ends (Lightning's finalize does
    not close it), so the next run of a sweep in the same process would log into it."""
    for logger in made:
        if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:
            logger.experiment.finish()
