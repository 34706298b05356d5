"""A run's description: compose the config, check every setting, resolve it into a frozen RunSpec.

    cfg = compose(["arch=plain", "depth=56"])   # conf/config.yaml + overrides, as run.py sees them
    spec = resolve(cfg)                          # every setting checked, every `auto` decided, once
    train(spec)

Everything after `resolve` (training, the module, the Trainer, the benchmark, sweeps, the plan) reads
the RunSpec (spec.py), never the raw config: a setting is parsed in one place, and a bad one is
refused before any work, in one line that names the fix (ConfigError). How a run computes on this
machine (`trainer.*`: device, precision, compile, progress, logger) is decided in trainer_settings.py. The
defaults are data (resnet_repro/conf/config.yaml, shipped inside the package); this module reads
them, it never repeats them.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data import detect_layout, missing_data_message
from .devices import gpu_count
from .errors import ConfigError
from .loggers import check as check_loggers
from .models import Net
from .runs import flatten  # also registers the run_name resolver the config uses
from .spec import Data, Optim, RunSpec, Warmup
from .trainer_settings import COMPILE_AUTO_MIN_STEPS, resolve_trainer  # noqa: F401 (re-exported)

CONF_DIR = Path(__file__).resolve().parent / "conf"
# ${gpu_count:} in a launcher's config (hydra/launcher=local): every GPU of the machine, for every job.
OmegaConf.register_new_resolver("gpu_count", gpu_count, replace=True)


def at_most(default, limit):
    """${at_most:1000,${steps}}: the default, or `limit` where that is smaller (eval_every follows a short
    steps=20). A `limit` that is not a positive whole number is left to its own check."""
    if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1:
        return min(default, limit)
    return default


OmegaConf.register_new_resolver("at_most", at_most, replace=True)


# --------------------------------------------------------------------------- composing


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config run.py sees with these overrides (conf/config.yaml, presets, Hydra's override syntax).
    An override Hydra cannot apply (a misspelt key: dept=20) is a ConfigError naming the nearest key."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import CompactHydraException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides or []))
    except CompactHydraException as e:
        raise ConfigError(hydra_error_line(e)) from None


@functools.cache
def defaults() -> dict:
    """conf/config.yaml's settings, flat and unresolved ({"optim.lr": 0.1, "log_every": "${eval_every}", ...})."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"), resolve=False)
    return flatten({k: v for k, v in cfg.items() if k not in ("defaults", "hydra")})


def nearest_key(key: str) -> str | None:
    """The setting `key` is most likely a misspelling of, or None."""
    keys = list(defaults())
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not match:  # a misspelt last part of a dotted key: trainer.precison -> trainer.precision
        last = {k.rsplit(".", 1)[-1]: k for k in keys}
        match = [last[m] for m in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(last), n=1, cutoff=0.7)]
    return match[0] if match else None


def _did_you_mean(key: str, value: str) -> str:
    near = nearest_key(key)
    return f"; did you mean {near}={value}?" if near else "; the settings are listed in conf/config.yaml"


def hydra_error_line(error: Exception) -> str:
    """Hydra's message for an override it cannot apply, in one line, with the nearest valid key."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if error.__cause__ is not None:
        lines += [line.strip() for line in str(error.__cause__).splitlines()[:1] if line.strip()]
    kept = []
    for line in lines:
        if line.startswith(("Config search path", "provider=", "full_key:", "object_type=")):
            break  # the search path and OmegaConf's key details: not for a user
        if not line.startswith("To append to your config use"):  # settings the project does not read are refused
            kept.append(line)
    message, listing = "", False
    for line in kept:  # a heading's list ("Available options in 'experiment':") joined by commas
        message += (", " if listing and not message.endswith(":") else " ") + line if message else line
        listing = listing or line.endswith(":")
    if m := re.search(r"Could not override '([^']+)'", message):
        value = re.search(r"use \+\S+?=(.*)$", str(error), re.MULTILINE)
        message += _did_you_mean(m.group(1), value.group(1).strip() if value else "...")
    return message


# --------------------------------------------------------------------------- the run's description


# A sweep's folder under out_dir: one path component, so that no name reaches outside out_dir.
NAME = re.compile(r"[\w.=,-]+")


def check_name(name) -> str:
    """`name` as a folder of out_dir (ConfigError, naming the fix, for one that would reach elsewhere)."""
    if not isinstance(name, (str, int)) or not NAME.fullmatch(str(name)) or str(name) in (".", ".."):
        raise ConfigError(
            f"name={name} must be one folder name inside out_dir (letters, digits, - _ . = , but not . or ..), "
            f"e.g. name=fig6; to write elsewhere, set out_dir="
        )
    return str(name)


# warmup.enabled=auto: the paper warms up ResNet-110 (lr 0.01 until training error < 80%), and says
# 0.1 is too large to start converging at that depth; deeper nets (1202) get the same.
WARMUP_AUTO_MIN_DEPTH = 110


def resolve(cfg: DictConfig, check_data: bool = True) -> RunSpec:
    """Check every setting of `cfg` and resolve it into a RunSpec; ConfigError (one line, naming the fix)
    for the first bad one. `check_data=False` skips looking for data.root (the benchmark's generated images)."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:  # an interpolation that cannot be resolved
        raise ConfigError(
            f"cannot resolve the config: {str(e).splitlines()[0]}; check the ${{...}} in the overrides"
        ) from None
    config = {k: v for k, v in config.items() if k != "hydra"}
    flat = flatten(config)
    # the logger group's settings are its own files' (conf/logger/), checked by loggers.check
    unknown = sorted(k for k in set(flat) - set(defaults()) if not k.startswith("logger."))
    if unknown:
        key = unknown[0]
        group = [k for k in defaults() if k.startswith(f"{key}.")]
        if group:  # `optim=5`: one value for a group of settings
            raise ConfigError(
                f"{key} is a group of settings ({', '.join(group)}), not one; set one of them, "
                f"e.g. {group[0]}={flat[key]}"
            )
        raise ConfigError(
            f"{key} is not a setting of this project, so it would change nothing"
            f"{_did_you_mean(key, flat[key])} (or remove it)"
        )
    c = _Checker(flat)
    out_dir = c.raw("out_dir")
    if not isinstance(out_dir, str) or not out_dir.strip():
        raise ConfigError(f"out_dir={out_dir} must be a folder to write runs into, e.g. out_dir=experiments")
    sweep_dir = Path(str(c.raw("out_dir"))) / check_name(c.raw("name"))
    run_dir = Path(str(c.raw("run_dir")))
    if Path(os.path.normpath(sweep_dir)) not in Path(os.path.normpath(run_dir)).parents:  # run_id=, run_dir= by hand
        raise ConfigError(
            f"run_dir={run_dir} is not inside out_dir/name ({sweep_dir}); choose where runs go with out_dir= and name="
        )
    try:
        net = Net.of(c.raw("arch"), c.raw("depth"), c.raw("shortcut"), c.raw("block"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    steps = c.whole("steps")
    eval_every, log_every = c.whole("eval_every"), c.whole("log_every")
    if eval_every > steps:
        raise ConfigError(f"eval_every={eval_every} is larger than steps={steps}; set eval_every <= steps")
    if log_every > eval_every:
        raise ConfigError(f"log_every={log_every} is larger than eval_every={eval_every}; set log_every <= eval_every")
    seed = c.whole("seed", minimum=0, maximum=2**32 - 1)
    batch_size = c.whole("batch_size")

    milestones = _milestones(c.raw("optim.lr_milestones"), steps)
    optim = Optim(
        lr=c.number("optim.lr", above=0),
        momentum=c.number("optim.momentum", low=0, below=1),
        weight_decay=c.number("optim.weight_decay", low=0),
        lr_milestones=milestones,
        lr_decay=c.number("optim.lr_decay", above=0, high=1),
    )

    enabled = c.raw("warmup.enabled")
    if enabled != "auto" and not isinstance(enabled, bool):  # not 1 or 0.0, which equal True and False
        raise ConfigError(f"warmup.enabled={enabled} must be auto, true or false")
    warmup = Warmup(
        enabled=net.depth >= WARMUP_AUTO_MIN_DEPTH if enabled == "auto" else enabled,
        lr=c.number("warmup.lr", above=0),
        # a training error is in [0, 1]: 80 (a percentage) or 2 would end the warm-up at its first check;
        # 1 says so on purpose (the tests' way to end it at once)
        until_train_error=c.number("warmup.until_train_error", above=0, high=1),
        check_every=c.whole("warmup.check_every"),
    )
    if warmup.enabled and warmup.check_every > steps:
        raise ConfigError(
            f"warmup.check_every={warmup.check_every} is larger than steps={steps}: the warm-up would never be "
            f"checked and the whole run would train at warmup.lr={warmup.lr:g}; set warmup.check_every <= steps "
            f"(or warmup.enabled=false)"
        )
    if warmup.enabled and warmup.lr > optim.lr:
        raise ConfigError(
            f"warmup.lr={warmup.lr:g} is larger than optim.lr={optim.lr:g}: a warm-up starts lower; "
            f"set warmup.lr <= optim.lr (the paper: 0.01 before 0.1), or warmup.enabled=false"
        )

    root, cache_dir = c.raw("data.root"), c.raw("data.cache_dir")
    if not isinstance(root, str) or not root:
        raise ConfigError(f"data.root={root} must be a path to CIFAR-10 (see the README, Data)")
    download = c.raw("data.download")
    if download != "auto" and not isinstance(download, bool):
        raise ConfigError(f"data.download={download} must be auto, true or false (default: data.download=auto)")
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise ConfigError(f"data.cache_dir={cache_dir} must be a folder, or null for no cache")
    data = Data(
        root=Path(root).expanduser(),
        download=wants_download(cfg) if download == "auto" else download,
        # "" (RESNET_REPRO_CACHE= set empty) is no cache: never Path(""), the current directory
        cache_dir=Path(cache_dir).expanduser() if cache_dir else None,
        val_size=c.whole("data.val_size", minimum=0),
        split_seed=c.whole("data.split_seed", minimum=0, maximum=2**63 - 1),
        subset=_subset(c.raw("data.subset")),
    )

    trainer = resolve_trainer(c, steps)
    check_loggers(config.get("logger"))
    if check_data and not data.download and detect_layout(data.root) is None:  # last: the settings come first
        raise ConfigError(missing_data_message(data.root))
    return RunSpec(
        net=net,
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        log_every=log_every,
        optim=optim,
        warmup=warmup,
        data=data,
        trainer=trainer,
        run_id=str(c.raw("run_id")),
        run_dir=run_dir,
        report=c.flag("report"),
        config=config,
    )


def wants_download(cfg: DictConfig) -> bool:
    """data.download=auto: download where data.root is the default place (neither data.root= nor CIFAR10_ROOT
    given) and holds no data, so that the card's command works as typed. A path a user gave that holds no data
    is more likely a slip than a wish to fetch 170 MB there: it gets the missing-data message."""
    raw_root = OmegaConf.to_container(cfg.data, resolve=False).get("root")
    if raw_root != defaults()["data.root"] or os.environ.get("CIFAR10_ROOT"):
        return False
    return detect_layout(Path(str(cfg.data.root)).expanduser()) is None


def _milestones(milestones, steps: int) -> tuple[float, ...]:
    """optim.lr_milestones checked against steps: increasing fractions in (0, 1), each lr drop on a step of its
    own inside the schedule, after step 0 (module.lr_factor drops at round(m * steps)): steps=1 would train its
    only step at lr/10, and a drop at or past the last step changes nothing."""
    if not isinstance(milestones, list) or any(_number(m) is None or not 0 < m < 1 for m in milestones):
        raise ConfigError(
            f"optim.lr_milestones={milestones} must be a list of fractions of steps in (0, 1), "
            f"e.g. {defaults()['optim.lr_milestones']}"
        )
    if any(b <= a for a, b in zip(milestones, milestones[1:])):
        raise ConfigError(
            f"optim.lr_milestones={milestones} must increase (each a later fraction of steps), "
            f"e.g. {defaults()['optim.lr_milestones']}"
        )

    def fits(n: int) -> bool:
        at = [round(m * n) for m in milestones]
        return all(1 <= a < n for a in at) and all(b > a for a, b in zip(at, at[1:]))

    if not fits(steps):
        at = ", ".join(str(round(m * steps)) for m in milestones)
        enough = next(n for n in itertools.count(steps + 1) if fits(n))  # distinct fractions part at last
        raise ConfigError(
            f"steps={steps} is too short for optim.lr_milestones={milestones}: the lr drops would land on steps {at} "
            f"of {steps} (one at step 0 trains no step at optim.lr, one at the end changes nothing, two on one step "
            f"are one drop); "
            f"use a longer schedule (e.g. steps={enough}), or optim.lr_milestones=[]"
        )
    return tuple(float(m) for m in milestones)


def _subset(value) -> str | None:
    """data.subset: null (the full CIFAR-10 counts are required), or a name saying why the data is smaller."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"data.subset={value} must be null (full CIFAR-10) or a name for a deliberate subset, e.g. data.subset=tiny"
        )
    return value


def _number(value) -> float | None:
    """A finite real number, or None (bools, strings, nan and inf are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class _Checker:
    """Reads one flat config, checking each value's kind and range; messages name the key and the default."""

    def __init__(self, flat: dict):
        self.flat = flat

    def raw(self, key: str):
        return self.flat.get(key)

    def _fail(self, key: str, must: str):
        raise ConfigError(f"{key}={self.flat.get(key)} must be {must} (default: {key}={defaults().get(key)})")

    def whole(self, key: str, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.flat.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            if minimum == 1 and maximum is None:
                raise ConfigError(f"{key}={value} must be a positive whole number")
            self._fail(key, f"a whole number from {minimum}" + (f" to {maximum}" if maximum is not None else " up"))
        return value

    def number(self, key: str, low=None, above=None, high=None, below=None) -> float:
        value = _number(self.flat.get(key))
        bounds = [
            (low, ">=", lambda v, b: v >= b),
            (above, ">", lambda v, b: v > b),
            (high, "<=", lambda v, b: v <= b),
            (below, "<", lambda v, b: v < b),
        ]
        if value is None or not all(ok(value, b) for b, _, ok in bounds if b is not None):
            self._fail(key, "a number " + " and ".join(f"{op} {b:g}" for b, op, _ in bounds if b is not None))
        return value

    def flag(self, key: str) -> bool:
        value = self.flat.get(key)
        if not isinstance(value, bool):
            self._fail(key, "true or false")
        return value
