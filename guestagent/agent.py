"""The pass and the daemon loop: poll the sources, refresh, run what is new, flush the outbox,
sleep until something falls due.

The jobs live beside it: the source poller (poller.py), the deployment runner (runner.py),
the outbox (outbox.py) and the journal's state machine (journal.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from guestagent import config, console, identity, process
from guestagent.errors import ConfigError, StateError
from guestagent.journal import Journal
from guestagent.outbox import Outbox
from guestagent.poller import SourcePoller, renewed_sources
from guestagent.result import PassResult
from guestagent.runner import DeploymentRunner
from guestagent.state import StateDir

log = logging.getLogger("guestagent")

__all__ = ["Agent", "PassResult"]


class Agent:
    """One agent over one state directory. `run_pass` is a whole pass; `run_forever` the daemon."""

    loaded_path: str | None = None  # the config file SIGHUP re-reads

    def __init__(self, loaded: config.Loaded, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, quick_signal_attempts: int = 3):
        self.loaded = loaded
        self.clock = clock
        self.settings = loaded.settings()
        self.statedir = StateDir(self.settings.state_dir).ensure()
        # Before anything cached is trusted: a state directory of another instance is archived.
        self.identity_change = identity.ensure(self.statedir, self.settings)
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.wake = threading.Event()
        self.console = console.from_environment()  # one line per state change, a heartbeat
        self.journal = Journal(self.statedir,
                               self.console.state_change if self.console else None)
        self.poller = SourcePoller(self.statedir, clock, identity.schedule_seed(self.statedir))
        # `sleep` paces in-pass signal retries; tests drive it with `clock` (simulated time).
        self.outbox = Outbox(self.statedir, self.journal, clock=clock, sleep=sleep,
                             quick_attempts=quick_signal_attempts, stop_event=self.stop_event,
                             source_options=lambda name: self.settings.source_options(name))
        self.runner = DeploymentRunner(self.statedir, self.journal, self.outbox, clock=clock,
                                       stop_event=self.stop_event)
        self._applied_digest: str | None = None  # of the merged view last run to the end
        self._refreshed_digest: str | None = None  # of the view the refresh phases ran for
        self._metadata_config_error: str | None = None
        self._settings_key: tuple | None = None
        self._health: dict[str, str] | None = None
        self._last_loop_error: str | None = None
        # After a restart the last good copies (and the credentials they name) are in effect.
        self.metadata = self.poller.cached_view(self.settings.collectors)
        self.settings = self.settings_for(self.metadata)

    def settings_for(self, metadata: dict) -> config.Settings:
        """The effective settings; a bad `os-collect-config` key in metadata is reported
        (once) and ignored, never fatal: metadata is not the operator's file."""
        key = (id(self.loaded), json.dumps(metadata.get("os-collect-config"), sort_keys=True,
                                           default=str))
        if key == self._settings_key:
            return self.settings  # the common case: nothing that shapes them changed
        try:
            settings = self.loaded.settings(metadata)
        except ConfigError as exc:
            message = f"metadata key os-collect-config ignored: {exc}"
            if message != self._metadata_config_error:
                log.error("%s", message)
            self._metadata_config_error = message
            return self.loaded.settings()
        self._metadata_config_error = None
        self._settings_key = key
        return settings

    # -- one pass -----------------------------------------------------------
    def run_pass(self, *, signals_now: bool = False) -> PassResult:
        """Poll, run what is new, signal what is pending (every pending signal when
        `signals_now`, whatever its retry schedule). Never raises for bad metadata."""
        result = PassResult()
        self.outbox.begin_pass()
        poll = self.poller.poll(self.settings)
        changed = poll.changed
        settings = self.settings_for(poll.merged)
        renewed = renewed_sources(self.settings, settings)
        if renewed:
            # The metadata named new sources or new options (Heat's os-collect-config key):
            # poll those now; the others were just polled or keep their schedule.
            self.settings = settings
            again = self.poller.poll(settings, only=frozenset(renewed))
            poll.merged, poll.failed = again.merged, sorted(set(poll.failed) | set(again.failed))
            changed = changed or again.changed
            poll.changed = changed
            settings = self.settings_for(poll.merged)
        self.settings = settings
        result.sources_failed = poll.failed
        digest = self.poller.digest(poll)
        # Results from an earlier life reach Heat before new hooks (maybe long ones) run.
        self.outbox.flush(result, ignore_schedule=signals_now)
        if digest != self._applied_digest:
            self.metadata = poll.merged
            self.poller.last_change = self.clock()
            self.poller.start_burst(self.poller.last_change)
            result.changed = True
            identity.note_server_ids(self.statedir, poll.merged)
            if digest != self._refreshed_digest:  # not again when a pass cut short retries
                self._refresh(digest)
                self._refreshed_digest = digest
            self.runner.run_all(poll.merged, self.settings, result, self.poller.documents)
            # Only now: a pass cut short (full disk) plans again next time.
            self._applied_digest = digest
        if not self.stop_event.is_set():
            self.poller.release()
        self.outbox.flush(result, ignore_schedule=signals_now)
        self.statedir.lazy.sync()  # caches written on the way to the hooks (if none started)
        if result.signalled:
            # Heat may answer a signal with the next deployment of a chain: look again soon.
            self.poller.start_burst(self.clock())
        failing = {n: self.poller.errors.get(n, "unavailable") for n in result.sources_failed}
        if self.console is not None:
            self.console.heartbeat(self.journal, failing)  # itself decides whether it is time
        if failing != self._health:
            # For `guestagent status`; written on change only.
            self.statedir.save_health(failing, loop_error=self._last_loop_error)
            self._health = failing
        return result

    def _refresh(self, digest: str) -> None:
        from guestagent import refresh

        refresh.refresh_on_change(self.statedir.root, self.settings.os_config_dir,
                                  self.poller.documents, digest, self.settings.hook_timeout,
                                  self.statedir.lazy)

    def pending_signals(self) -> list:
        """Journal entries whose result still has to reach Heat."""
        return self.journal.pending_signals()

    # -- daemon -------------------------------------------------------------
    def next_wait(self) -> float:
        """Seconds until the next pass: until the earliest source falls due, or sooner when a
        signal retry does."""
        now = self.clock()
        due = self.poller.next_due(self.settings, now)
        retry_at = self.outbox.next_due()
        if retry_at is not None:
            due = min(due, retry_at)
        return max(0.0, due - now)

    def run_forever(self, on_pass: Callable[[PassResult], None] | None = None) -> None:
        """Poll until stop_event is set; reload configuration when reload_event is set."""
        self.poller.on_wake = self.wake.set  # a source that pushes changes wakes the loop
        while not self.stop_event.is_set():
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            wait_at_least = 0.0
            try:
                result = self.run_pass()
                self._loop_error(None)
            except StateError as exc:
                # Full disk or permissions: say why, keep trying; nothing is marked done.
                log.error("cannot make progress: %s", exc)
                result = PassResult()
                # A record that failed leaves its step due at once: do not spin on it.
                wait_at_least = self.settings.fast_poll_interval
            except Exception as exc:  # a bug in a pass must not end the daemon
                log.exception("pass failed unexpectedly; the loop goes on")
                self._loop_error(f"{type(exc).__name__}: {exc}")
                result = PassResult()
                wait_at_least = self.settings.fast_poll_interval
            if on_pass is not None:
                on_pass(result)
            self.wake.wait(max(wait_at_least, self.next_wait()))
            self.wake.clear()
        self.poller.close()
        try:
            self.statedir.lazy.sync()
        except StateError as exc:
            log.error("cannot sync the caches on the way out: %s", exc)

    def _loop_error(self, error: str | None) -> None:
        # A pass that keeps failing shows in `status` and `doctor` (health.json).
        if error == self._last_loop_error:
            return
        self._last_loop_error = error
        try:
            self.statedir.save_health(self._health or {}, loop_error=error)
        except StateError as exc:
            log.error("cannot record the pass failure: %s", exc)

    def request_reload(self) -> None:
        """Ask the loop to re-read its configuration before the next pass (SIGHUP)."""
        self.reload_event.set()
        self.wake.set()

    def reload(self) -> None:
        """Re-read the configuration files; every source is polled in the next pass."""
        self.poller.make_all_due()
        try:
            self.loaded = config.load(self.loaded_path, self.loaded.cli)
            self._settings_key = None
        except ConfigError as exc:
            log.error("configuration reload failed, keeping the old one: %s", exc)
            return
        self.settings = self.settings_for(self.metadata)
        log.info("configuration reloaded")

    def stop(self) -> None:
        """Ask the loop to end; running hooks get SIGTERM, then SIGKILL after a grace period."""
        self.stop_event.set()
        self.wake.set()
        threading.Thread(target=process.terminate_all, daemon=True).start()
