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
import shutil
import sys
import textwrap
from pathlib import Path

from .plan import DRY_RUN_ARGS
from .threads import use_project_thread_env

CONF = Path(__file__).resolve().parent / "conf"
HELP_ARGS = ("-h", "--help")
HYDRA_HELP = "--hydra-help"  # Hydra's own help (its flags: --cfg, --info, --multirun, ...), as Hydra prints it
# Config groups a user picks on the command line, with how they are picked; conf/campaign/ is not one
# (campaigns are started with `python -m resnet_repro.campaign`).
GROUPS = (
    ("experiment", "Presets (experiment=NAME; a preset's sweep needs -m)"),
    ("hydra/launcher", "Launchers of a sweep (-m hydra/launcher=NAME; default: one run after another here)"),
    ("logger", "Loggers besides metrics.csv (logger=NAME, several: logger=[tensorboard,wandb])"),
)


def settings_help(config: Path = CONF / "config.yaml") -> list[str]:
    """conf/config.yaml's settings as help lines, `KEY=DEFAULT  meaning`: the meaning is the setting's comment
    (its allowed values and what they do), with the comment lines that continue it, or, for a key with no comment
    beside it, the comment lines right above it; section headings kept."""
    entries: list = []  # a heading (str) or [key, default, comment]
    parents: list[str] = []
    skipping = False  # inside `defaults:` or `hydra:`, which are Hydra's, not settings
    above: list[str] = []  # comment lines right above a key, at its indent: its meaning where it has none beside it
    for line in config.read_text().splitlines():
        text, indent = line.strip(), len(line) - len(line.lstrip())
        if not text:
            above = []
            continue
        if text.startswith("#"):
            comment = text.lstrip("#").strip()
            if indent == 0 and comment.startswith("---"):
                entries.append(comment.strip("- "))
                above = []
            elif entries and isinstance(entries[-1], list) and entries[-1][2] and indent >= 8:
                entries[-1][2] += " " + comment  # continued on the next line, in the same column
            else:
                above.append(comment)
            continue
        comment_above, above = " ".join(above), []
        if indent == 0:
            skipping = text.startswith(("defaults:", "hydra:"))
        if skipping or text.startswith("- "):
            continue
        key, _, rest = text.partition(":")
        value, hash_, comment = rest.partition("#")
        parents = parents[: indent // 2]
        if not value.strip() and not hash_:  # a group of settings: optim:, data:, trainer:
            parents.append(key)
            continue
        entries.append([".".join([*parents, key]), value.strip(), comment.strip() or comment_above])
    lines = []
    for entry in entries:
        if isinstance(entry, str):
            lines.append(f" {entry}:")
        else:
            lines += described(f"{entry[0]}={entry[1]}", entry[2])
    return lines


def described(name: str, meaning: str, width: int = 32) -> list[str]:
    """`  name  meaning`, the meaning wrapped to the terminal in a column of its own (below a long name)."""
    columns = max(shutil.get_terminal_size((110, 24)).columns, 80) - 1
    indent = " " * (width + 4)
    body = textwrap.wrap(meaning, columns, initial_indent=indent, subsequent_indent=indent) or [""]
    if len(name) <= width:
        return [f"  {name:{width}}  {body[0][len(indent) :]}".rstrip(), *body[1:]]
    return [f"  {name}", *body] if meaning else [f"  {name}"]


def first_sentence(path: Path) -> str:
    """The first sentence of a config file's opening comment (after `# @package`): what it is for."""
    words = []
    for line in path.read_text().splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or text.startswith(("python ", "-")) or (words and not text):
            break
        if not text.startswith("@package"):
            words.append(text)
    opening = " ".join(words)
    end = opening.find(". ")
    return opening if end < 0 else opening[: end + 1]


def group_help() -> list[str]:
    lines = []
    for group, heading in GROUPS:
        options = sorted((CONF / group).glob("*.yaml"))
        if not options:
            continue
        lines += ["", f"{heading}:"]
        lines += [line for p in options for line in described(p.stem, first_sentence(p), width=12)]
    return lines


def help_text(prog: str = "python run.py", about: list[str] | None = None) -> str:
    """`--help`: what the command does (`about`; run.py's by default), then every setting, preset, launcher, logger."""
    about = about or [
        "One run of the paper's CIFAR-10 protocol (He et al. 2016, section 4.2), by default ResNet-20; -m sweeps",
        "every combination of comma-separated values and ends with a report:",
        f"  {prog} -m depth=20,56 arch=plain,resnet           # the degradation experiment (Figure 6)",
        f"  {prog} -m experiment=quick dry_run=true           # the plan of a preset: nothing trained",
        "Every setting is checked before any work; a bad one is one line naming the fix (exit 2).",
    ]
    return "\n".join(
        [
            f"usage: {prog} [-m] [KEY=VALUE ...]",
            "",
            *about,
            "",
            "Settings (resnet_repro/conf/config.yaml; KEY=DEFAULT  allowed values and meaning):",
            *settings_help(),
            *group_help(),
            "",
            "Also:",
            "  dry_run=true                        the plan: every run's directory, state, device, time estimate",
            "  python -m resnet_repro.report DIR   the report of a sweep folder (figures, Table 6, claims)",
            "  python -m resnet_repro.campaign     a campaign of runs trained in the background (start/stop/status)",
            "  python -m resnet_repro.pretrained   pretrained nets by name, akamaster's ResNets imported",
            f"Hydra's own help (its flags: --cfg job, --info, --multirun ...): {prog} {HYDRA_HELP}",
        ]
    )


def main() -> None:
    if any(arg in HELP_ARGS for arg in sys.argv[1:]):  # ours; Hydra's is --hydra-help
        print(help_text())
        sys.exit(0)
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
