"""The loop that ties it together: poll sources, plan, run hooks, flush the outbox, sleep.

Every journal transition is written before the step that depends on it
(DESIGN.md, "The deployment journal"), so a crash at any point resumes
correctly: a deployment caught `running` runs again (up to max_attempts),
a result caught `finished` is signalled from the outbox.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from guestagent import collectors, config, deployments, hooks, logs, process, retry, signals, state
from guestagent.collectors.base import NOT_MODIFIED, cheap_poll
from guestagent.deployments import Deployment
from guestagent.errors import (ConfigError, GuestAgentError, HookNotFound, InvalidDeployment,
                               SignalFailed, SourceNotConfigured, SourceUnavailable, StateError)
from guestagent.hooks.base import HookContext, HookResult
from guestagent.state import FINISHED, GONE, RECEIVED, RUNNING, SIGNALLED, JournalEntry

log = logging.getLogger("guestagent")

SECRET_INPUTS = ("deploy_password", "deploy_signal_id")
# A source falls due this much early: a wait that ends a hair before its time still polls it.
DUE_SLACK = 0.01


@dataclass
class PassResult:
    """What one pass did; `--once` turns it into the exit code."""

    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unsignalled: list[str] = field(default_factory=list)
    sources_failed: list[str] = field(default_factory=list)
    signal_tried: set[str] = field(default_factory=set)
    changed: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unsignalled


class Agent:
    """One agent over one state directory. `run_pass` is a whole pass; `run_forever` the daemon."""

    def __init__(self, loaded: config.Loaded, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, quick_signal_attempts: int = 3):
        self.loaded = loaded
        self.clock = clock
        self.sleep = sleep  # in-pass retry waits; tests drive it with `clock` (simulated time)
        self.quick_signal_attempts = quick_signal_attempts
        self.settings = loaded.settings()
        self.state = state.StateDir(self.settings.state_dir).ensure()
        self._collectors: dict[str, tuple[str, Any]] = {}
        self._polled_at: dict[str, float] = {}  # a source absent here is due now
        # Signals Heat received whose `signalled` record did not reach the disk (full disk):
        # the record is retried, the signal not sent again (by this process).
        self._sent_unrecorded: set[str] = set()
        self._source_errors: dict[str, str] = {}
        self._merged_hash: str | None = None
        self._sources_changed = True
        self._last_digest: str | None = None  # of the merged view last computed (maybe not run)
        self._metadata_config_error: str | None = None
        self._settings_key: tuple | None = None
        self._health: dict[str, str] | None = None
        self.metadata: dict = {}
        self.documents: dict[str, dict] = {}
        self._inhibitor = None
        self.last_change = 0.0
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.wake = threading.Event()
        self._load_cached_metadata()

    # -- sources ----------------------------------------------------------
    def _load_cached_metadata(self) -> None:
        # After a restart the last good copies (and the credentials they name) are in effect.
        docs = [c.document for c in (self.state.load_source(n) for n in self.settings.collectors) if c]
        self.metadata = merge(docs)
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

    def collect(self, result: PassResult, force: frozenset[str] = frozenset()) -> dict:
        """Poll the configured sources that are due (and those in `force`); return the merged
        view of last good copies.

        A source not due keeps its last good copy, unchanged. Sets `self._sources_changed`
        when any source's copy differs from the last collect.
        """
        docs = []
        previous = self.documents
        self.documents = {}
        for name in self.settings.collectors:
            cached = self.state.load_source(name)
            now = self.clock()
            if name not in force and self._due_at(name, now) > now + DUE_SLACK:
                if name in self._source_errors:
                    result.sources_failed.append(name)  # still failing as far as we know
                if cached is not None:
                    docs.append(cached.document)
                    self.documents[name] = cached.document
                continue
            self._polled_at[name] = now
            try:
                collector = self._collector(name)
                fresh = collector.collect(cached)
            except SourceNotConfigured as exc:
                log.debug("source %s skipped: %s", name, exc)
                fresh = None
            except SourceUnavailable as exc:
                result.sources_failed.append(name)
                if self._source_errors.get(name) != str(exc):
                    log.warning("%s (keeping its last good copy)" if cached else "%s", exc)
                self._source_errors[name] = str(exc)
                fresh = None
            else:
                if self._source_errors.pop(name, None):
                    log.info("source %s is back", name)
                if fresh is not NOT_MODIFIED and not _same(cached, fresh):
                    # Written only when it changed: file sources answer in full every poll.
                    cached = state.SourceCache(fresh.document, fresh.etag, fresh.last_modified,
                                               self.clock())
                    self.state.save_source(name, cached)
            if cached is not None:
                docs.append(cached.document)
                self.documents[name] = cached.document
        self._sources_changed = self.documents.keys() != previous.keys() or any(
            doc is not previous[name] for name, doc in self.documents.items())
        return merge(docs)

    def _due_at(self, name: str, now: float) -> float:
        """When source `name` is next polled: `conditional_polling_interval` after its last
        poll when polling it is cheap, `polling_interval` when not, `fast_poll_interval`
        while the fast-poll window after a change lasts."""
        polled_at = self._polled_at.get(name)
        if polled_at is None:
            return now
        s = self.settings
        known = self._collectors.get(name)
        cheap = known is not None and cheap_poll(known[1], self.state.load_source(name))
        interval = s.conditional_polling_interval if cheap else s.polling_interval
        if now - self.last_change < s.fast_poll_period:
            interval = min(interval, s.fast_poll_interval)
        return polled_at + interval

    def _collector(self, name: str):
        options = self.settings.source_options(name)
        fingerprint = json.dumps(options, sort_keys=True, default=str)
        known = self._collectors.get(name)
        if known is None or known[0] != fingerprint:
            # Rebuilt only when its options change, so tokens and connections are reused.
            known = (fingerprint, collectors.build(name, options))
            self._collectors[name] = known
        return known[1]

    # -- one pass -----------------------------------------------------------
    def run_pass(self, *, force_signals: bool = False) -> PassResult:
        """Collect, run what is new, signal what is pending. Never raises for bad metadata."""
        result = PassResult()
        merged = self.collect(result)
        changed = self._sources_changed
        settings = self.settings_for(merged)
        renewed = _renewed_sources(self.settings, settings)
        if renewed:
            # The metadata named new sources or new options (Heat's os-collect-config key):
            # poll those now; the others were just polled or keep their schedule.
            self.settings = settings
            merged = self.collect(result, frozenset(renewed))
            changed = changed or self._sources_changed
            settings = self.settings_for(merged)
        self.settings = settings
        if changed or self._last_digest is None:
            digest = hashlib.sha256(
                json.dumps(merged, sort_keys=True, default=str).encode()).hexdigest()
            self._last_digest = digest
        else:
            digest = self._last_digest  # every source answered "not modified": nothing to hash
        # Results from an earlier life reach Heat before new hooks (maybe long ones) run.
        self.flush_outbox(result, force=force_signals)
        if digest != self._merged_hash:
            self.metadata = merged
            self.last_change = self.clock()
            result.changed = True
            self._refresh(digest)
            self._run_deployments(merged, result)
            # Only now: a pass cut short (full disk) plans again next time.
            self._merged_hash = digest
        if not self.stop_event.is_set():
            self._release_sources()
        self.flush_outbox(result, force=force_signals)
        failing = {n: self._source_errors.get(n, "unavailable") for n in result.sources_failed}
        if failing != self._health:
            self.state.save_health(failing)  # for `guestagent status`; written on change only
            self._health = failing
        return result

    def _refresh(self, digest: str) -> None:
        """os-refresh-config's job on a metadata change: write the per-source files that
        OS_CONFIG_FILES names, then run the refresh phases (templates render at configure.d/20).

        The digest of what was last refreshed is kept on disk: a restart with the same
        metadata (every `--once`) does not run the phases again.
        """
        from guestagent import refresh

        marker = self.state.root / "refreshed.sha256"
        try:
            if marker.read_text().strip() == digest:
                return
        except FileNotFoundError:
            pass

        files = refresh.write_config_files(self.settings.os_config_dir, self.documents)
        outcome = refresh.run_refresh(files, timeout=self.settings.hook_timeout,
                                      log_dir=self.state.root / "refresh")
        for skipped in outcome.skipped:
            log.info("refresh: %s", skipped)
        if not outcome.ok:
            # The old agent stopped here and never ran the deployments; they still run.
            # No marker: the next start tries the phases again.
            log.error("%s", outcome.summary())
            return
        if outcome.steps:
            log.info("refresh: %d phase scripts ran", len(outcome.steps))
        state.write_atomic(marker, digest.encode())

    def _release_sources(self) -> None:
        # Every deployment of the current metadata has run: a source that holds its snapshot
        # until then (zaqar keeps the message claimed) may let it go.
        for _, collector in self._collectors.values():
            release = getattr(collector, "release", None)
            if release is None:
                continue
            try:
                release()
            except SourceUnavailable as exc:
                log.warning("%s (will release it on a later pass)", exc)

    def _run_deployments(self, merged: dict, result: PassResult) -> None:
        try:
            parsed = deployments.parse(merged)
        except InvalidDeployment as exc:
            log.error("metadata: %s; no deployment can run until it is fixed", exc)
            return
        for dep in parsed:
            for name in SECRET_INPUTS:
                logs.register_secret(dep.input_values().get(name))
        journal = self.state.journal()
        plan = deployments.plan(parsed, journal, self._already_deployed)
        for dep in plan.to_run:
            if self.stop_event.is_set():
                break
            try:
                self.execute(dep, result)
            except StateError:
                raise  # the disk, not the deployment: nothing further can be recorded
            except Exception:  # one deployment's bug must not stop the others
                log.exception("deployment %s: unexpected error; continuing with the others",
                              dep.label)
                result.failed.append(dep.key)
        # After the runs: an UPDATE is a new id replacing the old one under the same name, and
        # the old id's cleanup must not undo what the new one just applied (docker-compose).
        for key in plan.gone:
            self._forget(journal[key])

    def _already_deployed(self, dep_id: str) -> bool:
        if "/" in dep_id or dep_id.startswith("."):
            return False
        return (self.settings.deployed_dir / f"{dep_id}.json").exists()

    # -- one deployment -----------------------------------------------------
    def execute(self, dep: Deployment, result: PassResult) -> None:
        """Run one deployment through its journal states, then try to signal it."""
        entry = self.state.journal().get(dep.key)
        if entry is None:
            entry = JournalEntry(key=dep.key, id=dep.id, name=dep.name, group=dep.group,
                                 action=dep.action, received_at=self.clock())
            self.state.save_deployment(dep.key, dict(dep.raw))
            self.state.record(entry)
        if entry.state == RUNNING and entry.attempts >= self.settings.max_attempts:
            outcome = HookResult.failure(
                f"deployment {dep.label} was interrupted {entry.attempts} times while running "
                "(agent crash or reboot); giving up")
        else:
            entry.state, entry.attempts, entry.started_at = RUNNING, entry.attempts + 1, self.clock()
            self.state.record(entry)
            log.info("deployment %s: running group %s (%s, attempt %d)", dep.label, dep.group,
                     dep.action, entry.attempts)
            with self.inhibitor().hold(f"deployment {dep.label}"):
                outcome = self._run_hook(dep)
                if outcome.status_code == 0 and not self.stop_event.is_set():
                    outcome = self._unit_actions(dep, outcome)
            if self.stop_event.is_set() and outcome.status_code in (124, 143, 137):
                # Stopped by us, not failed: run it again after the restart.
                entry.state, entry.attempts = RECEIVED, entry.attempts - 1
                self.state.record(entry)
                log.info("deployment %s: interrupted by shutdown, will run again", dep.label)
                return
        result.ran.append(dep.key)
        self.state.save_response(dep.key, outcome.response())
        entry.state, entry.status_code, entry.finished_at = FINISHED, outcome.status_code, self.clock()
        entry.error = _last_line(outcome.stderr, f"exit status {outcome.status_code}") \
            if outcome.status_code else None
        self.state.record(entry)
        elapsed = (entry.finished_at - entry.started_at) if entry.started_at else 0.0
        if outcome.status_code:
            result.failed.append(dep.key)
            log.error("deployment %s: failed with status %d after %.1fs: %s", dep.label,
                      outcome.status_code, elapsed, entry.error)
        else:
            log.info("deployment %s: succeeded in %.1fs", dep.label, elapsed)
        self._deliver(entry, result, force=True)

    def _run_hook(self, dep: Deployment) -> HookResult:
        try:
            if dep.problem:
                raise dep.problem
            if dep.group in deployments.DATA_GROUPS:
                return HookResult(0, stdout=f"group {dep.group} is data for the template tree; "
                                            "nothing to run\n")
            if dep.group == "component":
                resolved = deployments.resolve_component(dep)
                if resolved is None:
                    return HookResult(0, stdout=f"no component config for action {dep.action}\n")
                dep = resolved
            hook = hooks.find(dep.group, self.settings.hooks_dirs)
            return hook.run(dep, self.hook_context(dep))
        except (InvalidDeployment, HookNotFound) as exc:
            return HookResult.failure(str(exc))
        except StateError as exc:
            if out_of_space(exc):
                raise  # the disk, not the deployment: it runs again when there is room
            return HookResult.failure(f"deployment {dep.label}: {exc}")
        except GuestAgentError as exc:
            return HookResult.failure(f"deployment {dep.label}: {exc}")
        except Exception as exc:  # a bug in one hook must not stop the others or the loop
            log.exception("deployment %s: hook crashed", dep.label)
            return HookResult.failure(f"deployment {dep.label}: internal error in the "
                                      f"{dep.group} hook: {type(exc).__name__}: {exc}")

    def inhibitor(self):
        """The logind shutdown delay lock held while a hook runs (a no-op without a bus)."""
        if self._inhibitor is None:
            from guestagent.systemd import ShutdownInhibitor
            self._inhibitor = ShutdownInhibitor()
        return self._inhibitor

    def _unit_actions(self, dep: Deployment, outcome: HookResult) -> HookResult:
        """Restart or reload the units a succeeded deployment names (options.restart_units)."""
        if not (dep.options.get("restart_units") or dep.options.get("reload_units")):
            return outcome
        from guestagent import systemd

        try:
            lines = systemd.apply_unit_actions(dep)
        except (InvalidDeployment, systemd.UnitActionFailed) as exc:
            return HookResult.failure(str(exc), stdout=outcome.stdout, stderr=outcome.stderr)
        outcome.stdout += "".join(f"guestagent: {line}\n" for line in lines)
        return outcome

    def hook_context(self, dep: Deployment) -> HookContext:
        work, outputs = hooks.tool_dirs(dep.group, self.state.root / "hooks")
        return HookContext(work_dir=work, outputs_dir=outputs,
                           capture_dir=self.state.deployment_dir(dep.key),
                           timeout=self.settings.hook_timeout,
                           hooks_dirs=tuple(self.settings.hooks_dirs))

    def _forget(self, entry: JournalEntry) -> None:
        """A deployment left the metadata: let its hook undo it, stop signalling, drop secrets."""
        raw = self.state.load_deployment(entry.key)
        if raw is not None:
            dep = deployments.parse_one(raw)
            try:
                hook = hooks.find(dep.group, self.settings.hooks_dirs)
                cleanup = getattr(hook, "cleanup", None)
                if cleanup is not None and not dep.problem:
                    cleanup(dep, self.hook_context(dep))
            except GuestAgentError as exc:
                log.warning("deployment %s: cleanup failed: %s", entry.name, exc)
        if entry.signal_pending():
            log.info("deployment %s (%s): gone from metadata; its signal is dropped",
                     entry.name, entry.id)
        entry.state = GONE
        self.state.record(entry)
        self.state.forget_secrets(entry.key)

    # -- outbox -------------------------------------------------------------
    def flush_outbox(self, result: PassResult, *, force: bool = False) -> None:
        """Send every finished, unsignalled result whose retry time has come (all when `force`)."""
        for entry in self.state.entries():
            if entry.key in result.signal_tried:
                continue  # once per pass: its retry time is in the journal now
            if entry.signal_pending() and (force or entry.next_signal_at <= self.clock()):
                if self.stop_event.is_set():
                    return
                self._deliver(entry, result, force=force)

    def pending_signals(self) -> list[JournalEntry]:
        return [e for e in self.state.entries() if e.signal_pending()]

    def _deliver(self, entry: JournalEntry, result: PassResult, force: bool = False) -> None:
        result.signal_tried.add(entry.key)
        raw = self.state.load_deployment(entry.key)
        response = self.state.load_response(entry.key)
        if raw is None or response is None:
            entry.signal_final, entry.signal_error = True, "deployment or response missing on disk"
            self.state.record(entry)
            return
        dep = deployments.parse_one(raw)
        where = str(self.state.deployment_dir(entry.key) / "response.json")
        try:
            target = signals.target_for(dep.input_values())
            entry.transport = target.transport
            if entry.key not in self._sent_unrecorded:
                body = signals.trim(response, where)
                retry.quick(lambda: signals.send(target, body),
                            attempts=self.quick_signal_attempts if force else 1, sleep=self.sleep,
                            retry_if=lambda e: isinstance(e, SignalFailed) and e.transient)
                self._sent_unrecorded.add(entry.key)
        except SignalFailed as exc:
            entry.signal_attempts += 1
            entry.signal_error = str(exc)
            if exc.transient:
                delay = retry.delay_after(entry.signal_attempts)
                entry.next_signal_at = self.clock() + delay
                log.warning("deployment %s (%s): signal not delivered (%s); retry in %.0fs",
                            entry.name, entry.id, exc, delay)
            else:
                entry.signal_final = True
                log.error("deployment %s (%s): signal REFUSED, not retried: %s",
                          entry.name, entry.id, exc)
            self.state.record(entry)
            if entry.signal_final:
                self.state.strip_secrets(entry.key, raw, SECRET_INPUTS)  # never sent again
            result.unsignalled.append(entry.key)
            return
        entry.state, entry.signalled_at, entry.signal_error = SIGNALLED, self.clock(), None
        entry.signal_attempts += 1
        self.state.record(entry)
        self._sent_unrecorded.discard(entry.key)
        self.state.strip_secrets(entry.key, raw, SECRET_INPUTS)  # kept for the hook's cleanup
        if target.transport != "NO_SIGNAL":
            log.info("deployment %s (%s): signalled (%s)", entry.name, entry.id, target.describe())

    # -- daemon -------------------------------------------------------------
    def next_wait(self) -> float:
        """Seconds until the next pass: until the earliest source falls due (see `_due_at`),
        or sooner when a signal retry does."""
        now = self.clock()
        wait = max(0.0, min((self._due_at(n, now) for n in self.settings.collectors),
                            default=now + self.settings.polling_interval) - now)
        due = [e.next_signal_at - now for e in self.pending_signals()]
        if due:
            wait = min(wait, max(0.0, min(due)))
        return wait

    def run_forever(self, on_pass: Callable[[PassResult], None] | None = None) -> None:
        """Poll until stop_event is set; reload configuration when reload_event is set."""
        while not self.stop_event.is_set():
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            wait_at_least = 0.0
            try:
                result = self.run_pass()
            except StateError as exc:
                # Full disk or permissions: say why, keep trying; nothing is marked done.
                log.error("cannot make progress: %s", exc)
                result = PassResult()
                # A record that failed leaves its step due at once: do not spin on it.
                wait_at_least = self.settings.fast_poll_interval
            if on_pass is not None:
                on_pass(result)
            self.wake.wait(max(wait_at_least, self.next_wait()))
            self.wake.clear()

    def request_reload(self) -> None:
        """Ask the loop to re-read its configuration before the next pass (SIGHUP)."""
        self.reload_event.set()
        self.wake.set()

    def reload(self) -> None:
        """Re-read the configuration files; every source is polled in the next pass."""
        self._polled_at.clear()
        try:
            self.loaded = config.load(self.loaded_path, self.loaded.cli)
            self._settings_key = None
        except ConfigError as exc:
            log.error("configuration reload failed, keeping the old one: %s", exc)
            return
        self.settings = self.settings_for(self.metadata)
        log.info("configuration reloaded")

    loaded_path: str | None = None

    def stop(self) -> None:
        """Ask the loop to end; running hooks get SIGTERM, then SIGKILL after a grace period."""
        self.stop_event.set()
        self.wake.set()
        threading.Thread(target=process.terminate_all, daemon=True).start()


def _renewed_sources(old: config.Settings, new: config.Settings) -> list[str]:
    """The sources of `new` that `old` did not have, or had with other options."""
    return [n for n in new.collectors
            if n not in old.collectors or new.source_options(n) != old.source_options(n)]


def _same(cached: state.SourceCache | None, fresh) -> bool:
    return cached is not None and (cached.document, cached.etag, cached.last_modified) == \
        (fresh.document, fresh.etag, fresh.last_modified)


def out_of_space(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a full disk or an exhausted quota."""
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)


def _last_line(text: str, default: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else default


def merge(documents: list[dict]) -> dict:
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
