"""What every collector returns, and the contract they share.

A collector is a small object with one public method, `collect(previous)`:
it returns `Collected` (a new document), `NOT_MODIFIED`, or raises
`SourceUnavailable` (this pass failed; the last good copy stays in effect).
A module builds its collector with `build(options)`, raising
`SourceNotConfigured` when the options lack what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
