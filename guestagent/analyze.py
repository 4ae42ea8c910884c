"""`guestagent analyze`: each deployment's timeline from the journal, like `cloud-init
analyze` for boot: when it was received, started, finished and signalled, how long each
step took, and how many attempts the hook and the signal needed.

`analyze --json` prints schema 1:

    {"schema": 1, "deployments": [
      {"id", "name", "group", "action", "state", "status_code",
       "received_at", "started_at", "finished_at", "signalled_at",   # epoch seconds or null
       "queued_s", "ran_s", "signal_s", "total_s",                   # seconds or null
       "attempts", "signal_attempts"}, ...]}

queued_s is received -> started, ran_s started -> finished, signal_s finished -> signalled
(null for NO_SIGNAL), total_s received -> signalled (-> finished for NO_SIGNAL); a step not
reached yet has null times and durations.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from guestagent.journal import Journal, JournalEntry
from guestagent.state import StateDir

SCHEMA = 1


@dataclass
class Timeline:
    """One deployment's steps and their durations."""

    id: str
    name: str
    group: str
    action: str
    state: str
    status_code: int | None
    received_at: float | None
    started_at: float | None
    finished_at: float | None
    signalled_at: float | None
    queued_s: float | None
    ran_s: float | None
    signal_s: float | None
    total_s: float | None
    attempts: int
    signal_attempts: int


def _span(start: float | None, end: float | None) -> float | None:
    # A step not reached (or a clock that went backwards) has no duration.
    if start is None or end is None or end < start:
        return None
    return round(end - start, 3)


def timeline(entry: JournalEntry) -> Timeline:
    """The Timeline of one journal entry."""
    received = entry.received_at or None
    # NO_SIGNAL: nothing is sent, the timeline ends when the hook finished.
    unsignalled = entry.transport == "NO_SIGNAL"
    signal_s = None if unsignalled else _span(entry.finished_at, entry.signalled_at)
    end = entry.finished_at if unsignalled else entry.signalled_at
    return Timeline(entry.id, entry.name, entry.group, entry.action, entry.state,
                    entry.status_code, received, entry.started_at, entry.finished_at,
                    entry.signalled_at, _span(received, entry.started_at),
                    _span(entry.started_at, entry.finished_at), signal_s,
                    _span(received, end), entry.attempts, entry.signal_attempts)


def timelines(root: Path) -> list[Timeline]:
    """Every journal entry under the state directory `root`, oldest received first."""
    entries = sorted(Journal(StateDir(root)), key=lambda e: e.received_at)
    return [timeline(e) for e in entries]


def as_json(items: list[Timeline]) -> dict:
    """The schema-1 object for `analyze --json`."""
    return {"schema": SCHEMA, "deployments": [asdict(t) for t in items]}


def _clock(when: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when)) if when else "-"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def table(items: list[Timeline]) -> str:
    """The timelines for people: one row per deployment, times of day and durations."""
    head = (f"{'NAME':24}  {'GROUP':12}  {'STATE':9}  {'CODE':>4}  {'RECEIVED':8}  "
            f"{'QUEUED':>7}  {'RAN':>8}  {'SIGNAL':>7}  {'TOTAL':>8}  TRIES")
    lines = [head]
    for t in items:
        code = "" if t.status_code is None else str(t.status_code)
        lines.append(f"{t.name[:24]:24}  {t.group[:12]:12}  {t.state:9}  {code:>4}  "
                     f"{_clock(t.received_at):8}  {_secs(t.queued_s):>7}  {_secs(t.ran_s):>8}  "
                     f"{_secs(t.signal_s):>7}  {_secs(t.total_s):>8}  "
                     f"{t.attempts}/{t.signal_attempts}")
    if len(lines) == 1:
        lines.append("(no deployments in the journal)")
    else:
        lines.append("TRIES: hook attempts / signal attempts")
    return "\n".join(lines)
