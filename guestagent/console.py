"""Status lines on the serial console: one short structured line per deployment state change
and a periodic heartbeat, so `openstack console log show` tells an operator what happened on
a server they cannot log in to.

    guestagent: ts=2026-11-30T06:40:00Z event=state deployment=web id=5b1e4c3a state=finished code=0 attempt=1
    guestagent: ts=2026-11-30T06:45:00Z event=heartbeat deployments=3 running=0 failed=1 pending_signals=0 sources_failing=0

Where: GUESTAGENT_CONSOLE names the device or file (the shipped unit sets /dev/console);
unset, empty or "off" writes nothing. GUESTAGENT_CONSOLE_HEARTBEAT sets the heartbeat's
seconds (default 300, 0 for none). A console that cannot be written never stops the agent.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("guestagent")

ENV_PATH, ENV_HEARTBEAT = "GUESTAGENT_CONSOLE", "GUESTAGENT_CONSOLE_HEARTBEAT"
DEFAULT_HEARTBEAT = 300.0
MAX_LINE = 240  # one console line: a serial log is read by people, 80-column or not
_UNSAFE = re.compile(r"[^A-Za-z0-9._:/@+-]")


def _value(text: Any, limit: int = 48) -> str:
    # key=value stays one token: no spaces, newlines or escape sequences on a console.
    return _UNSAFE.sub("_", str(text))[:limit] or "-"


@dataclass
class Console:
    """Writes status lines to `path`; `heartbeat` seconds apart at most once (0: never)."""

    path: str
    heartbeat_every: float = DEFAULT_HEARTBEAT
    clock: Callable[[], float] = time.time
    _last_beat: float = 0.0
    _failing: bool = False

    def state_change(self, entry: Any) -> None:
        """One line for a journal entry that just changed state (a JournalEntry: name, id,
        state, status_code, attempts)."""
        fields = [("event", "state"), ("deployment", _value(entry.name)),
                  ("id", _value(entry.id, 8)), ("state", _value(entry.state))]
        if entry.status_code is not None:
            fields.append(("code", str(entry.status_code)))
        if entry.attempts:
            fields.append(("attempt", str(entry.attempts)))
        self._write(fields)

    def heartbeat(self, entries: Iterable[Any], sources_failing: Mapping[str, str] | int = 0,
                  *, force: bool = False) -> bool:
        """A summary line when `heartbeat_every` has passed since the last (or `force`);
        True when written. Call it after every pass: it decides whether it is time."""
        now = self.clock()
        if not force and (self.heartbeat_every <= 0
                          or now - self._last_beat < self.heartbeat_every):
            return False
        self._last_beat = now
        entries = list(entries)
        failing = sources_failing if isinstance(sources_failing, int) else len(sources_failing)
        self._write([("event", "heartbeat"), ("deployments", str(len(entries))),
                     ("running", str(sum(e.state == "running" for e in entries))),
                     ("failed", str(sum(bool(e.status_code) for e in entries
                                        if e.state in ("finished", "signalled", "refused")))),
                     ("pending_signals", str(sum(e.signal_pending for e in entries))),
                     ("sources_failing", str(failing))])
        return True

    def line(self, fields: list[tuple[str, str]]) -> str:
        """The text of one line (without its newline)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        body = " ".join(f"{k}={v}" for k, v in [("ts", stamp)] + fields)
        return f"guestagent: {body}"[:MAX_LINE]

    def _write(self, fields: list[tuple[str, str]]) -> None:
        data = (self.line(fields) + "\n").encode()
        # An append to a device, not a state file (state.write_atomic does not apply): opened
        # per line, non-blocking, so a stuck serial port or a pipe without a reader never
        # stalls the agent; the line is dropped instead.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOCTTY
                         | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._failing:  # say it once, not on every line
                log.warning("console %s: cannot write status lines: %s", self.path,
                            os.strerror(exc.errno or errno.EIO))
            self._failing = True
            return
        if self._failing:
            log.info("console %s: writing status lines again", self.path)
        self._failing = False


def from_environment(environ: Mapping[str, str] | None = None) -> Console | None:
    """The Console GUESTAGENT_CONSOLE names, or None when it is unset, empty or "off"."""
    environ = os.environ if environ is None else environ
    path = environ.get(ENV_PATH, "").strip()
    if not path or path.lower() in ("off", "no", "none", "0"):
        return None
    every = environ.get(ENV_HEARTBEAT, "").strip()
    try:
        seconds = float(every) if every else DEFAULT_HEARTBEAT
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %.0f", ENV_HEARTBEAT, every,
                    DEFAULT_HEARTBEAT)
        seconds = DEFAULT_HEARTBEAT
    return Console(path, heartbeat_every=seconds)
