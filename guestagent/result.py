"""What one pass did: the record the runner and the outbox fill in and `--once` reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PassResult:
    """What one pass did; `--once` turns it into the exit code."""

    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unsignalled: list[str] = field(default_factory=list)
    signalled: list[str] = field(default_factory=list)
    sources_failed: list[str] = field(default_factory=list)
    signal_tried: set[str] = field(default_factory=set)
    changed: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unsignalled
