"""A campaign carried from one machine to the next inside the checkout.

A campaign's state lives on the machine that runs it; a run of many hours outlives a session only where the
same machine comes back. `carry` packs a stopped campaign into `campaigns/<name>.tar` of the checkout, to be
committed: campaign.json, events.jsonl, and each run's directory, an unfinished run whole (its last checkpoint
and snapshots: it resumes exactly), a finished run as its record (its weights are in results/ already).
`start` on a machine that has no such campaign unpacks it first, so the runs go on where they stopped.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tarfile
from pathlib import Path, PurePosixPath

from .collect import RECORD_FILES
from .store import Campaign, CampaignError, now

CARRIED = Path(__file__).resolve().parents[2] / "campaigns"  # in the checkout, committed with it
ORIGIN = "carried.json"  # in the archive: where, when, and from which checkout it was packed


def archive(name: str, checkout_dir: Path | None = None) -> Path:
    return (checkout_dir or CARRIED) / f"{name}.tar"


def pack(name: str, root: Path | None = None, checkout_dir: Path | None = None) -> Path:
    """Write campaigns/<name>.tar (replacing an earlier one in one step) from the stopped campaign."""
    campaign = Campaign(name, root)
    campaign.definition()  # a campaign not started here, or damaged: one line naming the fix
    if pid := campaign.supervisor_pid():
        raise CampaignError(f"campaign {name} is running (pid {pid}); stop it first: {campaign.command('stop')}")
    target = archive(name, checkout_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    origin = {"repo": str(target.parent.parent), "host": socket.gethostname(), "time": now()}
    partial = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        with tarfile.open(partial, "w") as tar:
            _add_text(tar, ORIGIN, json.dumps(origin, indent=1) + "\n")
            for path in (campaign.definition_file, campaign.events_file):
                if path.is_file():
                    tar.add(path, path.name)
            for run in campaign.runs():
                folder = campaign.run_dir(run)
                finished = campaign.finished(run)
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    inside = path.relative_to(folder)
                    if path.name.startswith("."):  # the lock and its holder, temporary files: this machine's
                        continue
                    if finished and str(inside) not in RECORD_FILES:  # no checkpoint: results/ has the weights
                        continue
                    tar.add(path, f"runs/{run.experiment}/{run.run_id}/{inside}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    print(
        f"campaign {name}: packed into {target} ({target.stat().st_size / 1e6:.1f} MB); commit it, and "
        f"`{campaign.command('start')}` on another machine resumes from it"
    )
    return target


def unpack(campaign: Campaign, checkout_dir: Path | None = None) -> bool:
    """The carried campaign into this machine's campaigns folder, where it has none; True if it did. Paths
    recorded inside the packing checkout (results/, ../shared/ data) are moved to this checkout's."""
    source = archive(campaign.name, checkout_dir)
    if campaign.definition_file.exists() or not source.is_file():
        return False  # never over a campaign this machine has: that one is newer than any committed copy
    if campaign.dir.exists() and any(campaign.dir.iterdir()):
        raise CampaignError(f"{campaign.dir} holds files but no campaign.json; move it away to resume from {source}")
    # Unpacked beside its place and moved in whole: a failure halfway leaves no half campaign to resume from.
    unpacking = campaign.dir.with_name(f".{campaign.name}.unpacking{os.getpid()}")
    try:
        with tarfile.open(source) as tar:
            members = tar.getmembers()
            unsafe = [m.name for m in members if not _safe(m)]
            if unsafe:
                raise CampaignError(f"{source} holds {unsafe[0]!r}, which is not a campaign's file; remove it")
            origin = json.loads(tar.extractfile(ORIGIN).read())
            tar.extractall(unpacking, members=[m for m in members if m.name != ORIGIN])
        definition_file = unpacking / campaign.definition_file.name
        definition = json.loads(definition_file.read_text())
        for key in ("results_dir", "data_root"):
            definition[key] = _rebased(definition[key], Path(origin["repo"]), source.parent.parent)
        definition_file.write_text(json.dumps(definition, indent=1) + "\n")
        if campaign.dir.exists():
            campaign.dir.rmdir()  # empty (checked above)
        os.rename(unpacking, campaign.dir)
    except (tarfile.TarError, KeyError, ValueError, OSError) as e:
        raise CampaignError(
            f"cannot unpack {source} ({e}); restore it from git, or remove it to start afresh"
        ) from None
    finally:
        shutil.rmtree(unpacking, ignore_errors=True)
    campaign.event("carried", packed_on=origin["host"], packed_at=origin["time"], archive=str(source))
    print(f"campaign {campaign.name}: unpacked from {source} (packed on {origin['host']}, {origin['time']})")
    return True


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _safe(member: tarfile.TarInfo) -> bool:
    path = PurePosixPath(member.name)
    return (member.isfile() or member.isdir()) and not path.is_absolute() and ".." not in path.parts


def _rebased(recorded: str, old_checkout: Path, new_checkout: Path) -> str:
    """A path inside the old checkout (results/), or beside it (../shared/data), at the same place by the new one."""
    for old, new in ((old_checkout, new_checkout), (old_checkout.parent, new_checkout.parent)):
        try:
            return str(new / Path(recorded).relative_to(old))
        except ValueError:
            continue
    return recorded  # elsewhere (an absolute folder of the user's): kept as it was
