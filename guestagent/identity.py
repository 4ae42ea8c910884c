"""Which instance a state directory belongs to, so a server booted from a snapshot of another
never replays the other's journal or trusts its boot metadata.

The instance id comes from the config drive (`openstack/latest/meta_data.json` `uuid`) when
the drive is configured and present, else from the firmware's system UUID (Nova sets it to
the instance's). It is kept in `instance.json` with the `deploy_server_id`s seen in
deployments and the stat signature of the heat_local boot files. A state directory that
names another instance is archived whole (journal, cached source documents, refresh
marker) under `archive/`, with the deployments' stored credentials removed, and the agent
starts clean. A boot file still exactly as the other instance saw it (same inode, size and
mtime: a disk snapshot keeps them; cloud-init rewriting it for this instance changes them)
holds the other server's credentials: it is moved to the archive too, so the config drive's
own copy of this instance's boot metadata is read instead.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guestagent import collectors
from guestagent.config import Settings
from guestagent.errors import GuestAgentError, StateError
from guestagent.state import StateDir, read_json, safe_component, write_json

log = logging.getLogger("guestagent")

IDENTITY_FILE = "instance.json"
DMI_UUID = "/sys/class/dmi/id/product_uuid"
# What moves to the archive: everything the old instance's metadata and journal produced.
ARCHIVED = ("deployments", "sources", "refreshed.sha256", "health.json")
_NO_UUID = {"", "00000000-0000-0000-0000-000000000000", "03000200-0400-0500-0006-000700080009"}


@dataclass(frozen=True)
class Change:
    """The state directory was another instance's; what was done about it."""

    previous: str
    current: str
    archived_to: Path


def discover(settings: Settings, dmi_path: str = DMI_UUID) -> tuple[str | None, str]:
    """(instance id, where it came from); (None, why) when nothing says."""
    if "config_drive" in settings.collectors:
        try:
            found = collectors.build("config_drive", settings.source_options("config_drive"))
            uuid = (found.collect(None).document.get("openstack") or {}).get("uuid")
        except GuestAgentError:
            uuid = None  # no drive, or unreadable: the poll reports it
        if isinstance(uuid, str) and uuid.strip():
            return uuid.strip().lower(), "config drive"
    try:
        with open(dmi_path) as fh:
            dmi = fh.read().strip().lower()
    except OSError:
        dmi = ""
    if dmi not in _NO_UUID:
        return dmi, "system UUID"
    return None, "no config drive uuid and no system UUID"


def schedule_seed(statedir: StateDir) -> str:
    """What seeds this instance's splay phase: its id, else a random seed kept on disk."""
    known = recorded(statedir)
    return str(known.get("instance_id") or known.get("seed") or "")


def recorded(statedir: StateDir) -> dict[str, Any]:
    """What `instance.json` says (empty when absent or unreadable)."""
    try:
        data = read_json(statedir.root / IDENTITY_FILE)
    except StateError:
        return {}
    return data if isinstance(data, dict) else {}


def ensure(statedir: StateDir, settings: Settings, *, dmi_path: str = DMI_UUID,
           now: float | None = None) -> Change | None:
    """Record this instance in the state directory; archive the directory's contents first
    when they belong to another instance. Returns what changed, if anything."""
    current, origin = discover(settings, dmi_path)
    known = recorded(statedir)
    previous = known.get("instance_id")
    boot = _boot_signatures(settings)
    if current is None or previous == current:
        changed = dict(known)
        if current is not None and known.get("boot_files") != boot:
            changed["boot_files"] = boot
        if not known.get("seed"):
            # Seeds the splay phase where no instance id is known: each server its own.
            changed["seed"] = secrets.token_hex(8)
        if changed != known:
            write_json(statedir.root / IDENTITY_FILE, changed)
        return None
    change = None
    if isinstance(previous, str) and previous:
        stale = [path for path, sig in boot.items()
                 if sig is not None and (known.get("boot_files") or {}).get(path) == sig]
        change = Change(previous, current,
                        _archive(statedir, previous, now or time.time(), stale))
        boot = _boot_signatures(settings)
        log.warning("this state directory belonged to instance %s, not this one (%s, from the "
                    "%s): its journal and cached metadata were archived in %s and are not "
                    "used; starting clean", previous, current, origin, change.archived_to)
    record = {"instance_id": current, "source": origin, "server_ids": [], "boot_files": boot,
              "seed": secrets.token_hex(8)}
    if change is not None:
        record["previous"] = {"instance_id": change.previous,
                              "archived_to": str(change.archived_to), "at": now or time.time()}
    write_json(statedir.root / IDENTITY_FILE, record)
    return change


def note_server_ids(statedir: StateDir, merged: dict) -> None:
    """Add the `deploy_server_id`s of the metadata's deployments to `instance.json`."""
    seen = set()
    # Hostile metadata must not stop the pass: only well-formed lists are looked into (the
    # deployment parser reports the rest, naming the field).
    listed = merged.get("deployments")
    for item in listed if isinstance(listed, list) else ():
        inputs = item.get("inputs") if isinstance(item, dict) else None
        for entry in inputs if isinstance(inputs, list) else ():
            if isinstance(entry, dict) and entry.get("name") == "deploy_server_id" \
                    and isinstance(entry.get("value"), str):
                seen.add(entry["value"])
    if not seen:
        return
    known = recorded(statedir)
    ids = known.get("server_ids") if isinstance(known.get("server_ids"), list) else []
    if seen <= set(ids):
        return
    write_json(statedir.root / IDENTITY_FILE, dict(known, server_ids=sorted(set(ids) | seen)))


def _boot_signatures(settings: Settings) -> dict[str, list | None]:
    """path -> [inode, size, mtime_ns] of each heat_local boot file (None when absent)."""
    from guestagent.collectors.heat_local import DEFAULT_PATH
    from guestagent.collectors.jsonfiles import path_option

    found: dict[str, list | None] = {}
    for path in path_option(settings.source_options("heat_local"), DEFAULT_PATH):
        try:
            st = os.stat(path)
        except OSError:
            found[str(path)] = None
            continue
        found[str(path)] = [st.st_ino, st.st_size, st.st_mtime_ns]
    return found


def _archive(statedir: StateDir, previous: str, now: float, stale_boot: list[str]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = statedir.archive(ARCHIVED, f"{stamp}-{safe_component(previous)}")
    for path in stale_boot:
        statedir.move_into(Path(path), target / "boot")
        log.warning("boot metadata %s was the other instance's (unchanged since it recorded "
                    "it): moved to %s", path, target / "boot")
    return target
