"""What every collector returns, and the contract they share.

A collector subclasses `Collector` and implements `collect(previous)`: it returns
`Collected` (a new document), `NOT_MODIFIED`, or raises `SourceUnavailable` (this pass
failed; the last good copy stays in effect). A module builds its collector with
`build(options)`, raising `SourceNotConfigured` when the options lack what it needs.
The other methods have defaults a collector overrides when it has more to say.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def collect(self, previous: SourceCache | None) -> "Collected | _NotModified":
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
