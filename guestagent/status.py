"""`guestagent status`: where every known deployment stands, read from the state directory
(the running agent is never asked), and with `--wait` a verdict once the work settles.

Verdicts (also the exit codes of `status --wait`): 0 all good; 1 something failed (a
deployment, or a signal Heat refused); 2 degraded (a source unreachable, a signal pending,
work unfinished when the timeout passed or with no agent running to finish it).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from guestagent.journal import (
    FINISHED,
    RECEIVED,
    REFUSED,
    RUNNING,
    SIGNALLED,
    Journal,
    JournalEntry,
)
from guestagent.state import HEALTH_FILE, StateDir, read_json

OK, FAILED, DEGRADED = 0, 1, 2


@dataclass
class Snapshot:
    """The state directory read once."""

    entries: list[JournalEntry]
    unseen: list[str]                 # deployment ids in the cached metadata, not yet in the journal
    sources_failing: dict[str, str]   # source -> last error, as the agent last recorded it
    agent_running: bool
    reasons: list[str] = field(default_factory=list)
    corrupt: dict[str, str] = field(default_factory=dict)  # deployment directory -> why

    def pending(self) -> list[str]:
        """Labels of work the agent still has to do."""
        busy = [f"{e.name} ({e.id}) {e.state}" for e in self.entries
                if e.state in (RECEIVED, RUNNING)]
        unsent = [f"{e.name} ({e.id}) signal pending" for e in self.entries if e.signal_pending]
        return busy + unsent + [f"{i} not started" for i in self.unseen]

    def verdict(self) -> int:
        """OK, FAILED or DEGRADED, with `reasons` filled in."""
        self.reasons = []
        for e in self.entries:
            if e.state in (FINISHED, SIGNALLED, REFUSED) and e.status_code:
                self.reasons.append(f"deployment {e.name} ({e.id}) failed with status "
                                    f"{e.status_code}: {e.error or ''}".rstrip(": "))
            if e.state == REFUSED:
                self.reasons.append(f"deployment {e.name} ({e.id}): signal refused: "
                                    f"{e.signal_error}")
        for directory, why in sorted(self.corrupt.items()):
            self.reasons.append(f"deployment directory {directory}: {why}")
        if self.reasons:
            return FAILED
        for name, error in sorted(self.sources_failing.items()):
            self.reasons.append(f"source {name} unreachable: {error}")
        self.reasons += self.pending()
        if self.reasons and not self.agent_running:
            self.reasons.append("no agent is running to finish the work")
        return DEGRADED if self.reasons else OK


def agent_running(root: Path) -> bool:
    """True while an agent holds the state directory's lock (daemon or --once)."""
    try:
        fd = os.open(root / "lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # closing drops our shared lock, if we got it
    return False


def snapshot(root: Path) -> Snapshot:
    """Read journal, cached metadata and source health from the state directory `root`."""
    from guestagent import deployments
    from guestagent.poller import merge_documents

    statedir = StateDir(root)
    journal = Journal(statedir)
    entries = sorted(journal, key=lambda e: e.received_at)
    known = {e.key for e in entries}
    docs = []
    for path in sorted((statedir.root / "sources").glob("*.json")):
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("document"), dict):
            docs.append(data["document"])
    try:
        parsed = deployments.parse(merge_documents(docs))
    except deployments.InvalidDeployment:
        parsed = []
    unseen = [d.id for d in parsed if d.key not in known]
    health = read_json(statedir.root / HEALTH_FILE) or {}
    failing = {k: str(v) for k, v in (health.get("sources_failing") or {}).items()}
    if health.get("loop_error"):
        failing["(agent loop)"] = f"the last pass failed unexpectedly: {health['loop_error']}"
    return Snapshot(entries, unseen, failing, agent_running(statedir.root),
                    corrupt=dict(journal.corrupt))


def wait(root: Path, timeout: float, *, interval: float = 0.25,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Snapshot:
    """Re-read the state until nothing is pending, the timeout passes, or no agent runs."""
    deadline = clock() + timeout
    while True:
        snap = snapshot(root)
        if not snap.pending() or not snap.agent_running or clock() >= deadline:
            return snap
        sleep(min(interval, max(0.0, deadline - clock())))


# What each journal state says about the deployment's signal.
_SIGNAL_STATE = {FINISHED: "pending", REFUSED: "refused"}


def status_row(entry: JournalEntry) -> dict:
    """One deployment's status, for people and for --json."""
    if entry.state == SIGNALLED:
        signal_state = "delivered" if entry.transport != "NO_SIGNAL" else "not needed"
    else:
        signal_state = _SIGNAL_STATE.get(entry.state, "-")
    last = entry.finished_at or entry.started_at
    return {"id": entry.id, "name": entry.name, "group": entry.group, "action": entry.action,
            "state": entry.state, "status_code": entry.status_code, "attempts": entry.attempts,
            "last_run": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)) if last else None,
            "signal": signal_state, "signal_transport": entry.transport,
            "signal_error": entry.signal_error, "error": entry.error}


def table(rows: list[dict]) -> str:
    """The rows as a table for people."""
    lines = [f"{'ID':36}  {'NAME':24}  {'GROUP':14}  {'STATE':9}  {'CODE':>4}  "
             f"{'LAST RUN':19}  SIGNAL"]
    for r in rows:
        code = "" if r["status_code"] is None else str(r["status_code"])
        lines.append(f"{r['id'][:36]:36}  {r['name'][:24]:24}  {r['group'][:14]:14}  "
                     f"{r['state']:9}  {code:>4}  {r['last_run'] or '-':19}  {r['signal']}")
    return "\n".join(lines)
