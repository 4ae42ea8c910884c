"""What every collector returns, and the contract they share.

A collector is a small object with one public method, `collect(previous)`:
it returns `Collected` (a new document), `NOT_MODIFIED`, or raises
`SourceUnavailable` (this pass failed; the last good copy stays in effect).
A module builds its collector with `build(options)`, raising
`SourceNotConfigured` when the options lack what it needs.

Optional methods the agent looks for:
- `cheap_poll(previous) -> bool`: True when the next poll costs the server and us next to
  nothing (a conditional GET that can be answered 304, or a stat of local files). Such a
  source is polled every `conditional_polling_interval`; one without the method, or
  answering False, every `polling_interval` (each poll costs the cloud a token or signature
  check and a database read, or a device scan).
- `release()`: every deployment of the last document has run (zaqar lets its message go).
- `on_push(callback) -> bool`, `pushing() -> bool`, `close()`: push (zaqar over Zaqar's
  websocket). The daemon calls `on_push` once per collector; `callback()` then runs on the
  collector's own thread whenever the source should be polled now (a change was pushed, the
  channel came up, or it was lost) and must only mark the source due and wake the loop. While
  `pushing()` is True, polling the source once per `polling_interval` is enough (no fast-poll
  window). `close()` ends the channel when the collector is replaced or the agent stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from guestagent.state import SourceCache


@dataclass
class Collected:
    """A fresh document from a source, with the validators for the next conditional request."""

    document: dict
    etag: str | None = None
    last_modified: str | None = None


class _NotModified:
    def __repr__(self) -> str:
        return "NOT_MODIFIED"


NOT_MODIFIED = _NotModified()


class Collector(Protocol):
    name: str

    def collect(self, previous: SourceCache | None) -> "Collected | _NotModified": ...


def cheap_poll(collector: object, previous: SourceCache | None) -> bool:
    """Whether polling `collector` now is cheap (see the module docstring)."""
    method = getattr(collector, "cheap_poll", None)
    return bool(method is not None and method(previous))


def wire_push(collector: object, callback: Callable[[], None]) -> bool:
    """Ask `collector` to call `callback()` when it should be polled now (see the module
    docstring); False when it offers no push (or push is off for it)."""
    method = getattr(collector, "on_push", None)
    return bool(method is not None and method(callback))


def pushing(collector: object) -> bool:
    """Whether `collector`'s push channel is live now."""
    method = getattr(collector, "pushing", None)
    return bool(method is not None and method())


def close(collector: object) -> None:
    """End whatever `collector` keeps open (its push channel); a no-op for most."""
    method = getattr(collector, "close", None)
    if method is not None:
        method()
