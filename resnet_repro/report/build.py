"""The report of a runs folder: every artifact the runs allow, one after the other, and what was skipped and why.

Each artifact is made by one function below, in the order of `make_report`. What the report could
not use is said in two lists: `skipped`, what the runs do not allow (no plain-56 run, no finished
run of a net: nothing is wrong, the runs are not there), and `left_out`, what is there but could
not be used (a damaged run, final weights that cannot be read, an artifact that failed), each
with its fix. A report with anything left out is incomplete: `python -m resnet_repro.report`
then exits 1.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import glob
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..results import SkippedRun, load_results
from ..trained_with import code_commit
from .claims import check_claims, claims_markdown, test_predictions
from .figure7 import figure7, figure7_stats
from .figures import figure1, figure6, pairs
from .gradients import gradient_claims, remove_stale, write_gradients, write_residuals
from .index import INDEX, write_index
from .nets import NetRuns, group_runs
from .provenance import net_record, provenance_text
from .style import auto_ymax
from .tables import table6_markdown, table6_rows

# Every file a report may write but its index: removed first, so a stale one never passes for this report's.
ARTIFACTS = (
    "curves.csv",
    "figure1.png",
    "figure1.pdf",
    "figure6.png",
    "figure6.pdf",
    "pairs.png",
    "pairs.pdf",
    "figure7.png",
    "figure7.pdf",
    "figure7.csv",
    "table6.md",
    "table6.csv",
    "claims.md",
    "claims.csv",
    "provenance.json",
)


# A folder a report wrote holds this file: only such a folder (or an empty one) is written into, so a report never
# replaces or removes a user's own table6.csv.
FOLDER_MARKER = ".written-by-resnet-repro-report"


class ReportFolderError(ValueError):
    """The report's folder cannot be written, or holds files no report wrote; the message names the fix."""


@dataclass
class Report:
    """What a report wrote, what it skipped (and why), what it left out (and the fix), and notes on the runs."""

    out_dir: Path
    commit: str  # the report code's
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what the runs do not allow
    left_out: list[str] = field(default_factory=list)  # what is there but could not be used, each with its fix
    notes: list[str] = field(default_factory=list)  # runs not drawn by design: unfinished configurations, diverged
    damaged: list[SkippedRun] = field(default_factory=list)  # the runs load_results could not read
    artifacts: dict = field(default_factory=dict)  # name -> its provenance.json entry

    def record(self, name: str, paths: list[Path], shown: list[NetRuns], **extra) -> None:
        self.written += paths
        self.artifacts[name] = {"files": [p.name for p in paths], "nets": [net_record(n) for n in shown], **extra}

    @contextlib.contextmanager
    def attempt(self, what: str):
        """Runs one artifact: its unexpected failure becomes a left-out line."""
        try:
            yield
        except BrokenPipeError:
            raise  # the reader of its progress left (make_report): not a fault of this artifact
        except Exception as e:  # noqa: BLE001 (whatever went wrong, the other artifacts are still made)
            self.left_out.append(f"{what}: failed ({type(e).__name__}: {e})")

    @property
    def made_anything(self) -> bool:
        return any(p.name not in ("provenance.json", INDEX) for p in self.written)

    @property
    def complete(self) -> bool:
        """Something was made and nothing was left out: what `python -m resnet_repro.report` exits 0 for."""
        return self.made_anything and not self.left_out


def make_report(
    root: str | Path,
    out_dir: str | Path | None = None,
    ymax: float | None = None,
    figure7_on: bool = True,
    data_root: str | Path | None = None,
    device: str = "cpu",
    figure7_images: int | None = None,
    verbose: bool = True,
    command: str | None = None,
) -> Report:
    """Every artifact the runs under `root` allow, into `out_dir` (default <root>/report)."""
    root = Path(root)
    out = Path(out_dir) if out_dir is not None else root / "report"
    if out.is_symlink():  # -o a link to a folder: the report goes into that folder (swapped there, the link kept)
        out = Path(os.path.realpath(out))
    results = load_results(root)
    nets, notes = group_runs(results)
    ymax = auto_ymax(nets) if ymax is None else ymax
    prepare_folder(out)
    if verbose:
        print(f"report of {root} -> {out}", flush=True)
    # Made whole in a hidden folder of its own beside `out` (the index names the runs folder relative to where it
    # is written), then swapped with `out` in one step: a reader or a kill mid-report meets the old report or the
    # new one, never a mix, and never a half-written file.
    staging = out.parent / f".{out.name}{STAGING}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        if (out / INDEX).is_file():  # index.py tells a README.md written by hand (kept) from its own
            shutil.copy2(out / INDEX, staging / INDEX)
        report = _make(
            results, nets, notes, ymax, root, staging, figure7_on, data_root, device, figure7_images, verbose, command
        )
        publish(report, out, staging)
    except BrokenPipeError:
        raise  # `report ... | head`: the reader left; the report stops unpublished, as `find | head` stops find
    except OSError as e:
        raise ReportFolderError(
            f"cannot write the report into {out} ({e.strerror or e}); free space or give -o a writable folder"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if verbose:
        print_summary(report)
    return report


def prepare_folder(out: Path) -> None:
    """`out` made, and fit for a report: a folder this user can write that is empty (but for a README.md, which
    the index keeps) or was written by a report (ReportFolderError, one line, otherwise). A report killed
    mid-swap is finished first."""
    recover(out)
    if out.exists() and not out.is_dir():
        raise ReportFolderError(f"{out} is a file, not a folder; give the report a folder with -o")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportFolderError(
            f"cannot make the report folder {out} ({e.strerror or e}); give -o a writable folder"
        ) from None
    if (out / FOLDER_MARKER).is_file() or _old_report(out):
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name != INDEX)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ReportFolderError(
            f"{out} holds {shown}, which no report wrote there: a report writes only into an empty folder or its "
            f"own; give the report an empty folder with -o, or move those files away"
        )


def claim_folder(out: Path) -> None:
    """Mark `out` as a report's folder: a later report may replace its artifacts (campaign collect marks the
    results folder it fills with runs and then reports into)."""
    (out / FOLDER_MARKER).write_text(
        "This folder is written by python -m resnet_repro.report; it may replace its files.\n"
    )


def _old_report(out: Path) -> bool:
    """A folder written by a report made before FOLDER_MARKER: its provenance.json says so."""
    try:
        return "report_code_commit" in json.loads((out / "provenance.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def publish(report: Report, out: Path, staging: Path) -> None:
    """Make `staging` the whole new folder (the new artifacts, and hard links to everything else in `out` that is
    not an earlier report's artifact), swap it with `out` in one step, then remove the old folder."""
    owned = _owned(out)
    for entry in out.iterdir():
        if entry.name not in owned and not os.path.lexists(staging / entry.name):
            _mirror(entry, staging / entry.name)  # the user's files and the runs: linked, not copied
    claim_folder(staging)
    _swap(staging, out)  # staging now holds the old folder
    _carry_late(staging, out, owned)
    shutil.rmtree(staging)
    report.out_dir, report.written = out, [out / p.name for p in report.written]


def _owned(folder: Path) -> set[str]:
    """The names in `folder` that a report made: a later report replaces or drops them; nothing else is touched."""
    return {*ARTIFACTS, FOLDER_MARKER, INDEX, *(p.name for p in remove_stale(folder))}


def _mirror(source: Path, target: Path) -> None:
    """`target` the same tree as `source`: files hard-linked (copied where the file system has no links)."""
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=True, copy_function=_link)
    else:
        _link(source, target)


def _link(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _carry_late(old: Path, new: Path, owned: set[str]) -> None:
    """Files something else wrote into the old folder between the mirroring and the swap, into the new one."""
    for path in sorted(old.rglob("*")):
        relative = path.relative_to(old)
        if relative.parts[0] in owned or os.path.lexists(new / relative) or path.is_dir():
            continue
        (new / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, new / relative)


# The staging folder of a report (beside its folder, with the pid) and, where the two folders cannot be swapped in
# one step, the old folder set aside for the moment between the two renames.
STAGING, ASIDE = ".report-tmp", ".report-old"


def _swap(new: Path, old: Path) -> None:
    """`new` and `old` exchanged. Linux does it in one step (renameat2 RENAME_EXCHANGE); elsewhere `old` is set
    aside and `new` renamed into its place, and `recover` puts the old folder back if a kill falls in between."""
    if _exchange(new, old):
        return
    aside = old.parent / f".{old.name}{ASIDE}{os.getpid()}"
    os.rename(old, aside)
    try:
        os.rename(new, old)
    except OSError:
        os.rename(aside, old)
        raise
    os.rename(aside, new)


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(a, b, RENAME_EXCHANGE): True if done, False where the system or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # glibc before 2.28, musl
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):  # a file system without exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def recover(out: Path) -> None:
    """What a report killed mid-publish left: its old folder set aside with `out` gone (put back), its staging
    folders and old folders (removed, after carrying over any file that is not an earlier report's)."""
    for leftover in sorted(out.parent.glob(f".{glob.escape(out.name)}{ASIDE}*")) if out.parent.is_dir() else []:
        if not _pid_alive(leftover.name.rpartition(ASIDE)[2]):
            if not out.exists():
                os.rename(leftover, out)
                print(f"[report] {out} put back from {leftover.name}, where a report killed mid-swap left it")
            else:
                _carry_late(leftover, out, _owned(leftover))
                shutil.rmtree(leftover, ignore_errors=True)
    for leftover in out.parent.glob(f".{glob.escape(out.name)}{STAGING}*") if out.parent.is_dir() else []:
        if not _pid_alive(leftover.name.rpartition(STAGING)[2]) and out.is_dir():
            _carry_late(leftover, out, _owned(leftover))
            shutil.rmtree(leftover, ignore_errors=True)


def _pid_alive(text: str) -> bool:
    """The process that left a folder named with its pid is still running (this one's left it in a report that
    failed, and is not)."""
    try:
        if int(text) == os.getpid():
            return False
        os.kill(int(text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _make(
    results, nets, notes, ymax, root, out, figure7_on, data_root, device, figure7_images, verbose, command
) -> Report:
    report = Report(out, code_commit(), notes=notes, damaged=results.skipped)
    report.left_out += [f"run {run}" for run in results.skipped]
    stats = pd.DataFrame()
    if nets:
        write_curves(report, nets)
        with report.attempt("Figure 1"):
            write_figure(report, figure1, nets, ymax)
        with report.attempt("Figure 6"):
            write_figure(report, figure6, nets, ymax)
        with report.attempt("Plain vs ResNet at equal depth"):
            write_figure(report, pairs, nets, ymax)
        with report.attempt("Table 6"):
            write_table6(report, nets)
        with report.attempt("Figure 7"):
            stats = write_figure7(report, nets, figure7_on, data_root, device, figure7_images, verbose)
        norms = pd.DataFrame()
        if figure7_on:  # like Figure 7, these need the data and forward passes
            with report.attempt("Gradient flow"):
                norms = write_gradients(report, nets, data_root, verbose)
            with report.attempt("F(x)+x"):
                write_residuals(report, nets, data_root, verbose)
        with report.attempt("Claims"):
            write_claims(report, nets, stats, figure7_on, data_root, device, verbose, gradient_claims(norms))
    else:
        report.skipped.append(f"everything: no runs with metrics under {root}")
    command = command or " ".join(sys.argv)
    with report.attempt("Index"):
        write_index(report, nets, root, command)
    write_provenance(report, root, command)
    return report


def write_curves(report: Report, nets: list[NetRuns]) -> None:
    """Every curve drawn, as tidy rows: what a reader re-plots or checks the figures against."""
    path = report.out_dir / "curves.csv"
    pd.concat([n.curves for n in nets], ignore_index=True).to_csv(path, index=False)
    report.record("curves", [path], nets)


def write_figure(report: Report, make, nets: list[NetRuns], ymax: float) -> None:
    paths, skipped, shown = make(nets, report.out_dir, ymax, report.commit)
    report.skipped += skipped
    if paths:
        report.record(paths[0].stem, paths, shown, ymax=ymax)


def write_table6(report: Report, nets: list[NetRuns]) -> None:
    table, skipped = table6_rows(nets, report.commit)
    report.skipped += skipped
    if table.empty:
        report.skipped.append("Table 6: needs at least one finished run")
        return
    markdown, csv = report.out_dir / "table6.md", report.out_dir / "table6.csv"
    table.to_csv(csv, index=False)
    markdown.write_text(table6_markdown(table, nets, report.commit))
    report.record("table6", [markdown, csv], [n for n in nets if not n.done.empty])


def write_figure7(
    report: Report, nets: list[NetRuns], on: bool, data_root, device: str, images: int | None, verbose: bool
) -> pd.DataFrame:
    """Figure 7 and its numbers (figure7.csv); returns them, empty where none could be computed."""
    if not on:
        report.skipped.append("Figure 7: turned off (--no-figure7)")
        return pd.DataFrame()
    stats, skipped, left_out = figure7_stats(nets, data_root, device, images, verbose)
    report.skipped += skipped
    report.left_out += left_out
    if stats.empty:
        report.skipped.append("Figure 7: needs a finished run with its checkpoint and data")
        return stats
    stats.to_csv(report.out_dir / "figure7.csv", index=False)
    n_images = f"a fixed random {images} of the test images" if images else "all test images"
    paths = figure7(nets, stats, report.out_dir, report.commit, n_images)
    shown = [n for n in nets if (stats.net == n.display_name).any()]
    report.record("figure7", [*paths, report.out_dir / "figure7.csv"], shown, images=n_images)
    return stats


def write_claims(
    report: Report,
    nets: list[NetRuns],
    stats: pd.DataFrame,
    forward=True,
    data_root=None,
    device="cpu",
    verbose=False,
    more: pd.DataFrame | None = None,
) -> None:
    """What the paper claims and what these runs show, from the curves drawn, Figure 7's numbers and (unless
    `forward` is off, as --no-figure7 turns off every forward pass) the final weights' test predictions; `more`:
    rows computed elsewhere (the gradient-flow claim)."""
    drawn = [n for n in nets if len(n.usable) and n.net.block == "basic"]  # the paper's CIFAR nets
    if not drawn:
        report.skipped.append("Claims: needs a run that is done or training")
        return
    curves = pd.concat([n.curves for n in drawn], ignore_index=True)
    predictions, notes = test_predictions(drawn, data_root, device, verbose) if forward else ({}, [])
    report.notes += notes
    table = check_claims(curves, stats, predictions)
    if more is not None and not more.empty:  # numbered on after the paper's claims
        more = more.assign(number=range(len(table) + 1, len(table) + len(more) + 1))
        table = pd.concat([table, more.reindex(columns=table.columns)], ignore_index=True)
    footer = "  \n".join(provenance_text(drawn, report.commit).splitlines())
    markdown, csv = report.out_dir / "claims.md", report.out_dir / "claims.csv"
    table.to_csv(csv, index=False)
    markdown.write_text(claims_markdown(table, curves, footer))
    report.record("claims", [markdown, csv], drawn)


def write_provenance(report: Report, root: Path, command: str) -> None:
    path = report.out_dir / "provenance.json"
    provenance = {
        "generated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs_root": str(root.resolve()),
        "report_code_commit": report.commit,
        "command": command,
        "artifacts": report.artifacts,
        "skipped": report.skipped,
        "left_out": report.left_out,
        "damaged_runs": [vars(run) for run in report.damaged],
        "notes": report.notes,
    }
    path.write_text(json.dumps(provenance, indent=1, default=str) + "\n")
    report.written.append(path)


def print_summary(report: Report) -> None:
    for path in report.written:
        print(f"  wrote   {path.name}")
    for line in report.skipped:
        print(f"  skipped {line}")
    for line in report.notes:
        print(f"  note    {line}")
    for line in report.left_out:
        print(f"  left out {line}")
    if report.left_out:
        print(f"  {len(report.left_out)} left out: this report is incomplete; fix what is named above and report again")
