"""The source poller: each source on its own schedule, its last good copy cached, all merged.

A source whose poll is cheap (a conditional GET, a stat) is polled every
`conditional_polling_interval` (every `fast_poll_interval` for `fast_poll_period` after a
change). A costly source (a token check and a database read in the cloud, a device scan):

- steadily every `polling_interval`, on a grid whose phase is drawn once per instance from
  its id (`splay` seconds wide; stable across restarts) with each interval jittered by
  up to 10%, so servers booted together do not poll together;
- after a change, or after this agent delivered a signal (a chain of deployments may
  follow), on a short burst: `fast_poll_interval` later, then doubling (1, 2, 4 s): three
  polls per change, then the steady schedule;
- after a failure, backing off (doubling up to 4 x `polling_interval`), and after "not
  found" (the stack was deleted) at once to MAX_BACKOFF.

The first poll of every source is never delayed. A source not due keeps its last good
copy; one that fails keeps it too, and is reported as failing until it answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from guestagent import collectors, passlog
from guestagent.collectors.base import NOT_MODIFIED, Collector
from guestagent.config import Settings
from guestagent.errors import SourceGone, SourceNotConfigured, SourceUnavailable
from guestagent.state import SourceCache, StateDir

log = logging.getLogger("guestagent")

# A source falls due this much early: a wait that ends a hair before its time still polls it.
DUE_SLACK = 0.01
# The longest wait between polls of a costly source that answers "not found".
MAX_BACKOFF = 3600.0
JITTER = 0.1
# The burst after a change polls 1, 2 and 4 fast_poll_intervals apart: a chain's next
# deployment (Heat answers our signal within a second or two) is seen at once, and an
# update costs the cloud no more than os-collect-config's single poll and login did.
BURST_STEPS_MAX = 4


@dataclass
class Poll:
    """What one round of polling saw."""

    merged: dict                      # the merged view of every source's last good copy
    changed: bool                     # some source's copy differs from the previous round
    failed: list[str] = field(default_factory=list)  # sources failing, as far as we know


class SourcePoller:
    """Polls the configured sources when due; `poll` is the one public step."""

    def __init__(self, statedir: StateDir, clock: Callable[[], float], instance: str = ""):
        self.statedir = statedir
        self.clock = clock
        self.instance = instance                  # seeds the splay phase and the jitter
        self.errors: dict[str, str] = {}          # source -> its last error, while failing
        self.documents: dict[str, dict] = {}      # source -> last good document, as merged
        self.last_change = -math.inf              # start of the fast-poll window (cheap)
        self.burst_start = -math.inf              # start of the decaying burst (costly)
        self._failures: dict[str, int] = {}       # consecutive failed polls (gone: -1)
        self._collectors: dict[str, tuple[str, Collector]] = {}
        self._polled_at: dict[str, float] = {}    # a source absent here is due now
        self._digest: str | None = None
        # Set by the daemon: sources that can push (zaqar's websocket) then wake it.
        self.on_wake: Callable[[], None] | None = None

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
        started = time.monotonic()
        try:
            fresh = self._collector(settings, name).collect(cached)
        except SourceNotConfigured as exc:
            passlog.poll(name, None, time.monotonic() - started)
            log.debug("source %s skipped: %s", name, exc)
            self.errors.pop(name, None)
            return cached
        except Exception as exc:  # a collector's bug is that source's error, never the loop's
            if not isinstance(exc, SourceUnavailable):
                log.error("source %s: unexpected error", name, exc_info=exc)
                exc = SourceUnavailable(name, f"internal error: {type(exc).__name__}: {exc}")
            passlog.poll(name, None, time.monotonic() - started, error=exc)
            self._failed(name, cached, exc)
            return cached
        passlog.poll(name, fresh, time.monotonic() - started)
        listed = None if fresh is NOT_MODIFIED else fresh.document.get("deployments")
        if listed is not None and not isinstance(listed, list):
            # Nothing could run from it: the last good copy stays in effect.
            self._failed(name, cached, SourceUnavailable(
                name, f"not a valid document: field 'deployments': must be a list, not "
                      f"{type(listed).__name__}"))
            return cached
        self._failures.pop(name, None)
        if self.errors.pop(name, None):
            log.info("source %s is back", name)
        if fresh is NOT_MODIFIED or _same(cached, fresh):
            return cached
        # Written only when it changed: file sources answer in full every poll.
        cached = SourceCache(fresh.document, fresh.etag, fresh.last_modified)
        self.statedir.save_source(name, cached)
        return cached

    def _failed(self, name: str, cached: SourceCache | None, exc: SourceUnavailable) -> None:
        if self.errors.get(name) != str(exc):
            log.warning("%s (keeping its last good copy)" if cached else "%s", exc)
        self.errors[name] = str(exc)
        self._failures[name] = -1 if isinstance(exc, SourceGone) else \
            max(0, self._failures.get(name, 0)) + 1

    def due_at(self, settings: Settings, name: str, now: float) -> float:
        """When source `name` is next polled (see the module docstring)."""
        polled_at = self._polled_at.get(name)
        if polled_at is None:
            return now
        known = self._collectors.get(name)
        if known is not None and known[1].pushing():
            return polled_at + settings.polling_interval  # changes are pushed: a safety poll
        if known is not None and known[1].cheap_poll(self.statedir.load_source(name)):
            interval = settings.conditional_polling_interval
            if now - self.last_change < settings.fast_poll_period:
                interval = min(interval, settings.fast_poll_interval)
            return polled_at + interval
        failures = self._failures.get(name, 0)
        if failures < 0:
            return polled_at + MAX_BACKOFF
        if failures > 0:
            return polled_at + min(settings.polling_interval * 2 ** (failures - 1),
                                   4 * settings.polling_interval)
        steady = self._steady_after(settings, name, polled_at)
        burst = self._burst_after(settings, polled_at)
        return steady if burst is None else min(steady, burst)

    def start_burst(self, now: float) -> None:
        """Something may follow soon (a change, a signal we delivered): poll the costly
        sources on the decaying burst from `now`."""
        self.burst_start = now

    def _burst_after(self, settings: Settings, polled_at: float) -> float | None:
        step, at = settings.fast_poll_interval, self.burst_start
        while step <= BURST_STEPS_MAX * settings.fast_poll_interval \
                and step < settings.polling_interval \
                and at + step - self.burst_start <= settings.fast_poll_period:
            at += step
            if at > polled_at + DUE_SLACK:
                return at
            step *= 2
        return None

    def _steady_after(self, settings: Settings, name: str, polled_at: float) -> float:
        interval = settings.polling_interval
        splay = min(settings.effective_splay, interval)
        if splay <= 0:
            return polled_at + interval  # no splay: the old schedule
        seed = f"{self.instance}/{name}"
        phase = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF * splay
        slot = math.floor((polled_at - phase) / interval) + 1
        while True:
            # The same slot always draws the same jitter: a restart keeps the schedule.
            jitter = random.Random(f"{seed}/{slot}").uniform(-JITTER, JITTER) * interval
            due = phase + slot * interval + jitter
            if due >= polled_at + interval / 2:
                return due
            slot += 1

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
            if known is not None:
                known[1].close()  # its push channel goes with it
            known = (fingerprint, collectors.build(name, options))
            self._collectors[name] = known
            if self.on_wake is not None:
                known[1].on_push(lambda: self._pushed(name))
        return known[1]

    def _pushed(self, name: str) -> None:
        # On the collector's own thread: make the source due now and wake the loop; no more.
        self._polled_at.pop(name, None)
        if self.on_wake is not None:
            self.on_wake()

    def close(self) -> None:
        """End every collector's open channels (the agent stops)."""
        for _, collector in self._collectors.values():
            try:
                collector.close()
            except Exception as exc:  # noqa: BLE001 -- stopping: report, never raise
                log.warning("source %s: closing failed: %s", collector.name, exc)

    def release(self) -> None:
        """Every deployment of the current metadata has run: a source that holds its snapshot
        until then (zaqar keeps the message claimed) may let it go."""
        for _, collector in self._collectors.values():
            try:
                collector.release()
            except Exception as exc:  # noqa: BLE001 -- a collector's bug must not end the pass
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
