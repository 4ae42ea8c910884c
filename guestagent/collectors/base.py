"""What every collector returns, and the contract they share.

A collector subclasses `Collector` and implements `collect(previous)`: it returns
`Collected` (a new document), `NOT_MODIFIED`, or raises `SourceUnavailable` (this pass
failed; the last good copy stays in effect). A module builds its collector with
`build(options)`, raising `SourceNotConfigured` when the options lack what it needs.
The other methods have defaults a collector overrides when it has more to say.
Push (zaqar over Zaqar's websocket): the daemon calls `on_push(callback)` once per
collector; `callback()` then runs on the collector's own thread whenever the source should
be polled now (a change was pushed, the channel came up, or it was lost) and must only mark
the source due and wake the loop. While `pushing()` is True, polling the source once per
`polling_interval` is enough. `close()` ends the channel when the collector is replaced or
the agent stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


class Collector:
    """One metadata source."""

    name = "?"

    def collect(self, previous: SourceCache | None) -> Collected | _NotModified:
        """A fresh document, NOT_MODIFIED, or SourceUnavailable."""
        raise NotImplementedError

    def cheap_poll(self, previous: SourceCache | None) -> bool:
        """True when the next poll costs the server and us next to nothing (a conditional GET
        that can be answered 304, a stat of local files): such a source is polled every
        `conditional_polling_interval`, the others every `polling_interval` (a token or
        signature check and a database read in the cloud, or a device scan)."""
        return False

    def release(self) -> None:
        """Every deployment of the last document has run (zaqar lets its message go)."""

    def on_push(self, callback: Callable[[], None]) -> bool:
        """Call `callback()` when the source should be polled now; False: no push here."""
        return False

    def pushing(self) -> bool:
        """Whether the push channel is live now."""
        return False

    def close(self) -> None:
        """End whatever the collector keeps open (its push channel)."""
