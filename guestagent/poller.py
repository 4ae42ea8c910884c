"""The source poller: each source on its own schedule, its last good copy cached, all merged.

A source whose poll is cheap (a conditional GET, a stat) is polled every
`conditional_polling_interval`, the others every `polling_interval`, every source every
`fast_poll_interval` for `fast_poll_period` after a change. A source not due keeps its
last good copy; one that fails keeps it too, and is reported as failing until it answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from guestagent import collectors
from guestagent.collectors.base import NOT_MODIFIED, Collector
from guestagent.config import Settings
from guestagent.errors import SourceNotConfigured, SourceUnavailable
from guestagent.state import SourceCache, StateDir

log = logging.getLogger("guestagent")

# A source falls due this much early: a wait that ends a hair before its time still polls it.
DUE_SLACK = 0.01


@dataclass
class Poll:
    """What one round of polling saw."""

    merged: dict                      # the merged view of every source's last good copy
    changed: bool                     # some source's copy differs from the previous round
    failed: list[str] = field(default_factory=list)  # sources failing, as far as we know


class SourcePoller:
    """Polls the configured sources when due; `poll` is the one public step."""

    def __init__(self, statedir: StateDir, clock: Callable[[], float]):
        self.statedir = statedir
        self.clock = clock
        self.errors: dict[str, str] = {}          # source -> its last error, while failing
        self.documents: dict[str, dict] = {}      # source -> last good document, as merged
        self.last_change = 0.0                    # start of the fast-poll window
        self._collectors: dict[str, tuple[str, Collector]] = {}
        self._polled_at: dict[str, float] = {}    # a source absent here is due now
        self._digest: str | None = None

    def cached_view(self, names: Iterable[str]) -> dict:
        """The merged last good copies on disk (after a restart, before any poll)."""
        return merge_documents([c.document for c in map(self.statedir.load_source, names) if c])

    def poll(self, settings: Settings, only: frozenset[str] | None = None) -> Poll:
        """Poll the sources that are due (or exactly those in `only`); return the merged view
        of last good copies."""
        docs: dict[str, dict] = {}
        failed: list[str] = []
        previous = self.documents
        for name in settings.collectors:
            cached = self.statedir.load_source(name)
            now = self.clock()
            due = name in only if only is not None else \
                self.due_at(settings, name, now) <= now + DUE_SLACK
            if due:
                self._polled_at[name] = now
                cached = self._poll_one(settings, name, cached)
            if name in self.errors:
                failed.append(name)
            if cached is not None:
                docs[name] = cached.document
        self.documents = docs
        changed = docs.keys() != previous.keys() or any(
            doc is not previous[name] for name, doc in docs.items())
        return Poll(merge_documents(list(docs.values())), changed, failed)

    def digest(self, poll: Poll) -> str:
        """The sha256 of the merged view; recomputed only when a source's copy changed."""
        if poll.changed or self._digest is None:
            self._digest = hashlib.sha256(
                json.dumps(poll.merged, sort_keys=True, default=str).encode()).hexdigest()
        return self._digest

    def _poll_one(self, settings: Settings, name: str,
                  cached: SourceCache | None) -> SourceCache | None:
        try:
            fresh = self._collector(settings, name).collect(cached)
        except SourceNotConfigured as exc:
            log.debug("source %s skipped: %s", name, exc)
            self.errors.pop(name, None)
            return cached
        except SourceUnavailable as exc:
            if self.errors.get(name) != str(exc):
                log.warning("%s (keeping its last good copy)" if cached else "%s", exc)
            self.errors[name] = str(exc)
            return cached
        if self.errors.pop(name, None):
            log.info("source %s is back", name)
        if fresh is NOT_MODIFIED or _same(cached, fresh):
            return cached
        # Written only when it changed: file sources answer in full every poll.
        cached = SourceCache(fresh.document, fresh.etag, fresh.last_modified)
        self.statedir.save_source(name, cached)
        return cached

    def due_at(self, settings: Settings, name: str, now: float) -> float:
        """When source `name` is next polled (see the module docstring)."""
        polled_at = self._polled_at.get(name)
        if polled_at is None:
            return now
        known = self._collectors.get(name)
        cheap = known is not None and known[1].cheap_poll(self.statedir.load_source(name))
        interval = settings.conditional_polling_interval if cheap else settings.polling_interval
        if now - self.last_change < settings.fast_poll_period:
            interval = min(interval, settings.fast_poll_interval)
        return polled_at + interval

    def next_due(self, settings: Settings, now: float) -> float:
        """The earliest time any configured source falls due."""
        return min((self.due_at(settings, n, now) for n in settings.collectors),
                   default=now + settings.polling_interval)

    def _collector(self, settings: Settings, name: str) -> Collector:
        options = settings.source_options(name)
        fingerprint = json.dumps(options, sort_keys=True, default=str)
        known = self._collectors.get(name)
        if known is None or known[0] != fingerprint:
            # Rebuilt only when its options change, so tokens and connections are reused.
            known = (fingerprint, collectors.build(name, options))
            self._collectors[name] = known
        return known[1]

    def release(self) -> None:
        """Every deployment of the current metadata has run: a source that holds its snapshot
        until then (zaqar keeps the message claimed) may let it go."""
        for _, collector in self._collectors.values():
            try:
                collector.release()
            except SourceUnavailable as exc:
                log.warning("%s (will release it on a later pass)", exc)

    def make_all_due(self) -> None:
        """Poll every source at the next round (after a reload)."""
        self._polled_at.clear()


def renewed_sources(old: Settings, new: Settings) -> list[str]:
    """The sources of `new` that `old` did not have, or had with other options."""
    return [n for n in new.collectors
            if n not in old.collectors or new.source_options(n) != old.source_options(n)]


def merge_documents(documents: list[dict]) -> dict:
    """Shallow-merge source documents (later wins), but unite `deployments` lists by id."""
    merged: dict = {}
    by_id: dict[str, Any] = {}
    for doc in documents:
        for key, value in doc.items():
            if key == "deployments" and isinstance(value, list):
                for item in value:
                    ident = item.get("id") if isinstance(item, dict) else None
                    by_id[ident if isinstance(ident, str) else f"#{len(by_id)}"] = item
            else:
                merged[key] = value
    if by_id:
        merged["deployments"] = list(by_id.values())
    return merged


def _same(cached: SourceCache | None, fresh: Any) -> bool:
    return cached is not None and (cached.document, cached.etag, cached.last_modified) == \
        (fresh.document, fresh.etag, fresh.last_modified)
