"""The outbox: finished results on their way to Heat, with their durable retry schedule.

A result is signalled right after its hook finishes (a few quick attempts), then from the
journal on the retry schedule (`next_signal_at`) until Heat has it or refuses it for good.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping

from guestagent import deployments, http, retry, signals
from guestagent.errors import SignalFailed
from guestagent.journal import Journal, JournalEntry
from guestagent.result import PassResult
from guestagent.state import StateDir

log = logging.getLogger("guestagent")

# Inputs that carry the signal's credentials: removed from disk once no longer needed.
SECRET_INPUTS = ("deploy_password", "deploy_signal_id")


class Outbox:
    """Sends pending signals; `flush` is the pass's step, `deliver` one result's."""

    def __init__(self, statedir: StateDir, journal: Journal, *, clock: Callable[[], float],
                 sleep: Callable[[float], None], quick_attempts: int,
                 stop_event: threading.Event,
                 source_options: Callable[[str], Mapping[str, Any]] = lambda _name: {}):
        self.statedir = statedir
        # The options of the source that delivered a deployment: its TLS settings apply.
        self.source_options = source_options
        self.journal = journal
        self.clock = clock
        self.sleep = sleep
        self.quick_attempts = quick_attempts
        self.stop_event = stop_event
        # Signals Heat received whose `signalled` record did not reach the disk (full disk):
        # the record is retried, the signal not sent again (by this process).
        self._sent_unrecorded: set[str] = set()
        self._budget = http.Deadline(signals.PASS_BUDGET)

    def sent_unrecorded(self, key: str) -> None:
        """Heat already has `key`'s result (sent from memory): record it, never send again."""
        self._sent_unrecorded.add(key)

    def begin_pass(self) -> None:
        """In-pass attempts share one bound (signals.PASS_BUDGET), so one dead endpoint never
        holds up the other deployments' hooks for longer than that."""
        self._budget = http.Deadline(signals.PASS_BUDGET)

    def target(self, dep: deployments.Deployment, source: str | None) -> signals.Target:
        """Where `dep`'s signal goes, with the TLS settings of the source that delivered it."""
        options = self.source_options(source) if source else {}
        return signals.target_for(dep.input_values(), source_options=options)

    def flush(self, result: PassResult, *, ignore_schedule: bool = False) -> None:
        """Send every pending result whose retry time has come (all of them when
        `ignore_schedule`, as `--once` asks), each at most once per pass."""
        for entry in self.journal.pending_signals():
            if entry.key in result.signal_tried:
                continue  # once per pass: its retry time is in the journal now
            if ignore_schedule or entry.next_signal_at <= self.clock():
                if self.stop_event.is_set():
                    return
                self.deliver(entry, result, quick=ignore_schedule)

    def next_due(self) -> float | None:
        """When the earliest pending retry falls due; None when nothing is pending."""
        return min((e.next_signal_at for e in self.journal.pending_signals()), default=None)

    def deliver(self, entry: JournalEntry, result: PassResult, *, quick: bool = False) -> None:
        """Try to signal one finished result (`quick`: a few attempts right away)."""
        result.signal_tried.add(entry.key)
        raw = self.statedir.load_deployment(entry.key)
        response = self.statedir.load_response(entry.key)
        if raw is None or response is None:
            self.journal.refuse(entry, "deployment or response missing on disk", None)
            return
        dep = deployments.parse_one(raw)
        where = str(self.statedir.deployment_dir(entry.key) / "response.json")
        target = None
        try:
            target = self.target(dep, entry.source)
            if entry.key not in self._sent_unrecorded:
                body = signals.trim(response, where)
                signals.deliver(target, body, attempts=self.quick_attempts if quick else 1,
                                budget=self._budget, sleep=self.sleep)
                self._sent_unrecorded.add(entry.key)
        except SignalFailed as exc:
            self._failed(entry, raw, exc, target.transport if target else None)
            result.unsignalled.append(entry.key)
            return
        self.journal.deliver(entry, self.clock(), target.transport)
        self._sent_unrecorded.discard(entry.key)
        if target.transport != "NO_SIGNAL":
            result.signalled.append(entry.key)
        self.statedir.strip_secrets(entry.key, raw, SECRET_INPUTS)  # kept for the hook's cleanup
        if target.transport != "NO_SIGNAL":
            log.info("deployment %s (%s): signalled (%s)", entry.name, entry.id, target.describe())

    def _failed(self, entry: JournalEntry, raw: dict, exc: SignalFailed,
                transport: str | None) -> None:
        if exc.transient:
            delay = retry.delay_after(entry.signal_attempts + 1)
            self.journal.defer(entry, str(exc), self.clock() + delay, transport)
            log.warning("deployment %s (%s): signal not delivered (%s); retry in %.0fs",
                        entry.name, entry.id, exc, delay)
            return
        self.journal.refuse(entry, str(exc), transport)
        log.error("deployment %s (%s): signal REFUSED, not retried: %s", entry.name, entry.id, exc)
        self.statedir.strip_secrets(entry.key, raw, SECRET_INPUTS)  # never sent again
