"""The deployment journal: every state a deployment can be in, and the legal moves between them.

One entry per deployment, kept in `deployments/<key>/journal.json`. Each move is written to
disk (through state.write_json) before anything that depends on it happens, so a crash at
any point resumes correctly. `receive` alone is not synced: `start` follows it at once and
syncs the entry, and a crash between them loses only a deployment that never started (the
next pass receives it again), so an entry a crash left empty reads as no entry.

    move        from                      to          what it records
    receive     (none)                    received    first seen in the metadata
    start       received, running         running     a hook run begins (running: again after a crash)
    spawned     running                   running     the hook's process group, to find it after a crash
    interrupt   running                   received    our own shutdown stopped it; runs again, uncounted
    finish      running                   finished    the hook's result is on disk; signal pending
    defer       finished                  finished    a signal attempt failed; retry at next_signal_at
    deliver     finished                  signalled   Heat has the result
    refuse      finished                  refused     the signal can never be delivered; not retried
    forget      any but gone              gone        the deployment left the metadata
    report      any but gone (or none)    finished    a result made outside the runner
                                                      (`guestagent notify`), to be signalled

On disk `refused` is written as the previous release wrote it (`finished` with
`signal_final: true`), so a state directory stays readable by either release.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from guestagent import crashpoint
from guestagent.errors import IllegalMove, StateError
from guestagent.state import StateDir, read_json, write_json

RECEIVED = "received"
RUNNING = "running"
FINISHED = "finished"      # the result is recorded; its signal is pending
SIGNALLED = "signalled"
REFUSED = "refused"        # the signal was refused for good (or cannot be built)
GONE = "gone"
STATES = (RECEIVED, RUNNING, FINISHED, SIGNALLED, REFUSED, GONE)
# A deployment in one of these never runs again.
DONE_STATES = frozenset({FINISHED, SIGNALLED, REFUSED, GONE})

# move -> (states it may start from, state it ends in); None is "no entry yet".
MOVES: dict[str, tuple[frozenset, str]] = {
    "receive": (frozenset({None}), RECEIVED),
    "start": (frozenset({RECEIVED, RUNNING}), RUNNING),
    "spawned": (frozenset({RUNNING}), RUNNING),
    "interrupt": (frozenset({RUNNING}), RECEIVED),
    "finish": (frozenset({RUNNING}), FINISHED),
    "defer": (frozenset({FINISHED}), FINISHED),
    "deliver": (frozenset({FINISHED}), SIGNALLED),
    "refuse": (frozenset({FINISHED}), REFUSED),
    "forget": (frozenset({RECEIVED, RUNNING, FINISHED, SIGNALLED, REFUSED}), GONE),
    "report": (frozenset({None, RECEIVED, RUNNING, FINISHED, SIGNALLED, REFUSED}), FINISHED),
}


@dataclass(frozen=True)
class JournalEntry:
    """Where one deployment stands. Crosses the runner, the outbox and `status`."""

    key: str
    id: str
    name: str
    group: str
    state: str = RECEIVED
    action: str = "CREATE"
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    received_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    signalled_at: float | None = None
    transport: str | None = None
    signal_attempts: int = 0
    next_signal_at: float = 0.0
    signal_error: str | None = None
    hook_pgid: int | None = None          # the running hook's process group
    hook_started: int | None = None       # its start time (clock ticks since boot)
    hook_boot_id: str | None = None       # the boot it started in
    source: str | None = None             # the source that delivered it (its TLS settings
                                          # apply to the signal)

    @property
    def signal_pending(self) -> bool:
        """True while a finished result still has to reach the orchestrator."""
        return self.state == FINISHED

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES


def to_disk(entry: JournalEntry) -> dict[str, Any]:
    """The entry as the previous release wrote it (see the module docstring)."""
    data = dataclasses.asdict(entry)
    data["signal_final"] = entry.state == REFUSED
    if entry.state == REFUSED:
        data["state"] = FINISHED
    return data


def from_disk(data: dict[str, Any]) -> JournalEntry:
    """An entry from its JSON; the previous release's `finished` + `signal_final` is REFUSED."""
    names = {f.name for f in dataclasses.fields(JournalEntry)}
    fields = {k: v for k, v in data.items() if k in names}
    if fields.get("state") == FINISHED and data.get("signal_final"):
        fields["state"] = REFUSED
    if fields.get("state") not in STATES:
        raise ValueError(f"unknown state {fields.get('state')!r}")
    return JournalEntry(**fields)


class Journal:
    """The journal entries of one state directory, and the one way to move them."""

    def __init__(self, statedir: StateDir,
                 on_change: Callable[[JournalEntry], None] | None = None):
        self.statedir = statedir
        self.on_change = on_change  # told each entry whose state a move changed (the console)
        self._entries: dict[str, JournalEntry] | None = None
        self.corrupt: dict[str, str] = {}   # directory name -> why its entry could not be read

    def entries(self) -> dict[str, JournalEntry]:
        """All entries by key; read from disk once, then kept in memory."""
        if self._entries is None:
            self._entries = {}
            self.corrupt = {}
            base = self.statedir.root / "deployments"
            for child in sorted(base.iterdir()) if base.is_dir() else []:
                if (child / "journal.json").is_symlink():
                    continue  # planted, not ours: never read through it; the next move replaces it
                try:
                    data = read_json(child / "journal.json")
                except StateError as exc:
                    if not _never_reached_disk(child / "journal.json"):
                        self.corrupt[child.name] = str(exc)
                    continue
                if data is None:
                    continue  # a directory from a crash mid-create: nothing was promised
                try:
                    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
                        raise ValueError("not a journal entry")
                    entry = from_disk(data)
                except (TypeError, ValueError) as exc:
                    self.corrupt[child.name] = f"corrupt journal entry: {exc}"
                    continue
                self._entries[entry.key] = entry
        return self._entries

    def get(self, key: str) -> JournalEntry | None:
        return self.entries().get(key)

    def corrupt_entry(self, key: str) -> str | None:
        """Why the entry of `key` could not be read, when it exists but is corrupt."""
        self.entries()
        return self.corrupt.get(self.statedir.deployment_dir(key).name)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(list(self.entries().values()))

    def pending_signals(self) -> list[JournalEntry]:
        return [e for e in self if e.signal_pending]

    def move(self, entry: JournalEntry | None, move: str, **changes: Any) -> JournalEntry:
        """Apply `move` to `entry` (None for `receive`, which takes the fields in `changes`),
        write the new entry to disk and return it; IllegalMove when the table forbids it."""
        sources, target = MOVES[move]
        if entry is None:
            entry = self.get(changes.get("key", ""))  # `receive` of a known key is illegal
            if entry is not None:
                raise IllegalMove(entry.key, entry.state, move)
        current = entry.state if entry is not None else None
        if current not in sources:
            who = entry.key if entry is not None else changes.get("key", "?")
            raise IllegalMove(who, str(current), move)
        if entry is None:
            new = JournalEntry(**changes, state=target)
        else:
            new = dataclasses.replace(entry, state=target, **changes)
        self._write(new, crash_point=move != "spawned", durable=move != "receive")
        if self.on_change is not None and current != target:
            self.on_change(new)
        return new

    def _write(self, entry: JournalEntry, crash_point: bool, durable: bool = True) -> None:
        from guestagent.state import ensure_dir

        try:
            ddir = ensure_dir(self.statedir.deployment_dir(entry.key))
            write_json(ddir / "journal.json", to_disk(entry), fsync=durable)
        except StateError:
            self._entries = None  # memory must not run ahead of the disk
            raise
        self.entries()[entry.key] = entry
        if crash_point:  # the test crash points count state writes, not bookkeeping
            crashpoint.after(entry.state)

    # The moves, by name: each computes its fields and goes through `move`.
    def receive(self, *, key: str, id: str, name: str, group: str, action: str,
                now: float, source: str | None = None) -> JournalEntry:
        return self.move(None, "receive", key=key, id=id, name=name, group=group, action=action,
                         received_at=now, source=source)

    def start(self, entry: JournalEntry, now: float) -> JournalEntry:
        return self.move(entry, "start", attempts=entry.attempts + 1, started_at=now,
                         hook_pgid=None, hook_started=None, hook_boot_id=None)

    def spawned(self, entry: JournalEntry, pgid: int, started: int | None,
                boot_id: str | None) -> JournalEntry:
        return self.move(entry, "spawned", hook_pgid=pgid, hook_started=started,
                         hook_boot_id=boot_id)

    def interrupt(self, entry: JournalEntry) -> JournalEntry:
        return self.move(entry, "interrupt", attempts=max(0, entry.attempts - 1),
                         hook_pgid=None, hook_started=None, hook_boot_id=None)

    def finish(self, entry: JournalEntry, status_code: int, error: str | None,
               now: float) -> JournalEntry:
        return self.move(entry, "finish", status_code=status_code, error=error, finished_at=now,
                         hook_pgid=None, hook_started=None, hook_boot_id=None)

    def defer(self, entry: JournalEntry, error: str, next_at: float,
              transport: str | None) -> JournalEntry:
        return self.move(entry, "defer", signal_attempts=entry.signal_attempts + 1,
                         signal_error=error, next_signal_at=next_at,
                         transport=transport or entry.transport)

    def deliver(self, entry: JournalEntry, now: float, transport: str | None) -> JournalEntry:
        return self.move(entry, "deliver", signalled_at=now, signal_error=None,
                         signal_attempts=entry.signal_attempts + 1,
                         transport=transport or entry.transport)

    def refuse(self, entry: JournalEntry, error: str, transport: str | None) -> JournalEntry:
        return self.move(entry, "refuse", signal_error=error,
                         signal_attempts=entry.signal_attempts + 1,
                         transport=transport or entry.transport)

    def forget(self, entry: JournalEntry) -> JournalEntry:
        return self.move(entry, "forget")

    def report(self, entry: JournalEntry | None, dep: Any, status_code: int,
               now: float) -> JournalEntry:
        """A result produced outside the runner (heat-config-notify), `dep` a Deployment."""
        fields = dict(status_code=status_code, finished_at=now, signal_error=None,
                      next_signal_at=0.0, hook_pgid=None, hook_started=None, hook_boot_id=None)
        if entry is None:
            return self.move(None, "report", key=dep.key, id=dep.id, name=dep.name,
                             group=dep.group, action=dep.action, received_at=now, **fields)
        return self.move(entry, "report", **fields)



def _never_reached_disk(path) -> bool:
    """True for an entry a crash left empty (or NUL-filled): only the unsynced `received`
    record can end so, and it promised nothing; any other damage is corruption."""
    try:
        with open(path, "rb") as fh:
            return not fh.read(1 << 16).strip(b"\0 \t\r\n")
    except OSError:
        return False
