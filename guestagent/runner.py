"""The deployment runner: plan what the metadata asks for, run each through its hook, and
move its journal entry (journal.py) before each step that depends on it.

A deployment caught `running` after a crash runs again (up to max_attempts), after any
hook its earlier run left behind is stopped; one that leaves the metadata is cleaned up
by its hook and forgotten.
"""

from __future__ import annotations

import errno
import logging
import threading
from typing import Callable, Mapping

from guestagent import deployments, hooks, logs, passlog, process, signals
from guestagent.config import Settings
from guestagent.deployments import Deployment
from guestagent.errors import (
    GuestAgentError,
    HookNotFound,
    InvalidDeployment,
    SignalFailed,
    StateError,
    UntrustedPath,
)
from guestagent.hooks.base import HookContext, HookResult
from guestagent.journal import RECEIVED, RUNNING, Journal, JournalEntry
from guestagent.outbox import SECRET_INPUTS, Outbox
from guestagent.result import PassResult
from guestagent.state import StateDir

log = logging.getLogger("guestagent")

# Exit statuses of a hook our own shutdown stopped (timeout wrapper, SIGTERM, SIGKILL).
_STOPPED_BY_US = (124, 143, 137)


class DeploymentRunner:
    """Runs the deployments of a metadata view; `run_all` is the pass's step."""

    def __init__(self, statedir: StateDir, journal: Journal, outbox: Outbox, *,
                 clock: Callable[[], float], stop_event: threading.Event):
        self.statedir = statedir
        self.journal = journal
        self.outbox = outbox
        self.clock = clock
        self.stop_event = stop_event
        self._inhibitor = None
        self._reported_corrupt: set[str] = set()
        self._source_of: dict[str, str] = {}
        # Results signalled from memory because the disk was full, until they are recorded.
        self._unrecorded: dict[str, HookResult] = {}

    def run_all(self, merged: dict, settings: Settings, result: PassResult,
                documents: Mapping[str, dict] | None = None) -> None:
        """Run every deployment of `merged` not yet done, in order; then forget those that
        left the metadata. `documents` (source -> its document) say which source delivered
        each deployment."""
        self._source_of = _source_of(documents or {})
        try:
            parsed = deployments.parse(merged)
        except InvalidDeployment as exc:
            log.error("metadata: %s; no deployment can run until it is fixed", exc)
            return
        for dep in parsed:
            for name in SECRET_INPUTS:
                logs.register_secret(dep.input_values().get(name))
        plan = deployments.plan(parsed, self.journal.entries(),
                                lambda dep_id: deployments.already_deployed(
                                    settings.deployed_dir, dep_id))
        passlog.plan(passlog.decisions(parsed, self.journal.entries(), plan.to_run, plan.gone))
        for dep in plan.to_run:
            if self.stop_event.is_set():
                break
            why = self.journal.corrupt_entry(dep.key)
            if why is not None:
                # Its earlier run may have done anything: never run it blind a second time.
                if dep.key not in self._reported_corrupt:
                    log.error("deployment %s: %s; not run again (remove %s to run it anew)",
                              dep.label, why, self.statedir.deployment_dir(dep.key))
                    self._reported_corrupt.add(dep.key)
                result.failed.append(dep.key)
                continue
            try:
                self.execute(dep, settings, result)
            except UntrustedPath as exc:
                self._contain(dep, result, exc)  # a planted path fails this deployment only
            except StateError:
                raise  # the disk, not the deployment: nothing further can be recorded
            except Exception as exc:  # noqa: BLE001 -- one deployment's bug must not stop the rest
                self._contain(dep, result, exc)
        # After the runs: an UPDATE is a new id replacing the old one under the same name, and
        # the old id's cleanup must not undo what the new one just applied (docker-compose).
        for key in plan.gone:
            passlog.gone(self.journal.entries()[key])
            self.forget(self.journal.entries()[key], settings)

    def execute(self, dep: Deployment, settings: Settings, result: PassResult) -> None:
        """Run one deployment through its journal states, then try to signal it."""
        entry = self.journal.get(dep.key)
        if entry is None:
            self.statedir.save_deployment(dep.key, dict(dep.raw))
            entry = self.journal.receive(key=dep.key, id=dep.id, name=dep.name, group=dep.group,
                                         action=dep.action, now=self.clock(),
                                         source=self._source_of.get(dep.id))
        entry, outcome = self._outcome(entry, dep, settings)
        if outcome is None:
            return  # stopped by our own shutdown: it runs again after the restart
        result.ran.append(dep.key)
        where = str(self.statedir.deployment_dir(dep.key) / "response.json")
        problem = signals.fit_problem(outcome.response(), where)
        if problem:  # Heat would refuse the body: fail it here, not silently there
            outcome = HookResult.failure(f"deployment {dep.label}: {problem}",
                                         stdout=outcome.stdout, stderr=outcome.stderr)
        error = _last_line(outcome.stderr, f"exit status {outcome.status_code}") \
            if outcome.status_code else None
        try:
            self.statedir.save_response(dep.key, outcome.response())
            entry = self.journal.finish(entry, outcome.status_code, error, self.clock())
        except StateError as exc:
            if out_of_space(exc) and dep.key not in self._unrecorded:
                self._signal_unrecorded(dep, outcome, exc)
            raise
        self._unrecorded.pop(dep.key, None)
        elapsed = (entry.finished_at - entry.started_at) if entry.started_at else 0.0
        if outcome.status_code:
            result.failed.append(dep.key)
            log.error("deployment %s: failed with status %d after %.1fs: %s", dep.label,
                      outcome.status_code, elapsed, entry.error)
        else:
            log.info("deployment %s: succeeded in %.1fs", dep.label, elapsed)
        self.outbox.deliver(entry, result, quick=True)

    def _outcome(self, entry: JournalEntry, dep: Deployment,
                 settings: Settings) -> tuple[JournalEntry, HookResult | None]:
        """Run the hook (or decide not to) and say how it went; None when our own shutdown
        stopped it (the entry is back to `received`)."""
        if entry.state == RUNNING and dep.key in self._unrecorded:
            # Its failure went to Heat from memory when the disk was full: record that now.
            return entry, self._unrecorded[dep.key]
        if entry.state == RUNNING:
            self._stop_leftover(entry, dep)
            if entry.attempts >= settings.max_attempts:
                return entry, HookResult.failure(
                    f"deployment {dep.label} was interrupted {entry.attempts} times while "
                    "running (agent crash or reboot); giving up")
        entry = self.journal.start(entry, self.clock())
        log.info("deployment %s: running group %s (%s, attempt %d)", dep.label, dep.group,
                 dep.action, entry.attempts)
        holder = [entry]  # the hook's spawn records move it (RUNNING -> RUNNING)
        with self.inhibitor().hold(f"deployment {dep.label}"):
            outcome = self._run_hook(dep, settings, holder)
            if outcome.status_code == 0 and not self.stop_event.is_set():
                outcome = _unit_actions(dep, outcome)
        entry = holder[0]
        if self.stop_event.is_set() and outcome.status_code in _STOPPED_BY_US:
            self.journal.interrupt(entry)
            log.info("deployment %s: interrupted by shutdown, will run again", dep.label)
            return entry, None
        return entry, outcome

    def _contain(self, dep: Deployment, result: PassResult, exc: BaseException) -> None:
        """An unexpected error while handling `dep`: fail it, record and signal that if the
        journal allows, and go on with the others."""
        log.error("deployment %s: unexpected error; continuing with the others", dep.label,
                  exc_info=exc)
        result.failed.append(dep.key)
        outcome = HookResult.failure(f"deployment {dep.label}: internal error: "
                                     f"{type(exc).__name__}: {exc}")
        try:
            entry = self.journal.get(dep.key)
            if entry is None:
                self.statedir.save_deployment(dep.key, dict(dep.raw))
                entry = self.journal.receive(key=dep.key, id=dep.id, name=dep.name,
                                             group=dep.group, action=dep.action,
                                             now=self.clock())
            if entry.state == RECEIVED:
                entry = self.journal.start(entry, self.clock())
            if entry.state != RUNNING:
                return  # already finished: its own result stands
            self.statedir.save_response(dep.key, outcome.response())
            entry = self.journal.finish(entry, outcome.status_code,
                                        _last_line(outcome.stderr, "internal error"),
                                        self.clock())
            self.outbox.deliver(entry, result, quick=True)
        except GuestAgentError as again:
            log.error("deployment %s: could not record the failure either: %s", dep.label,
                      again)

    def _signal_unrecorded(self, dep: Deployment, outcome: HookResult,
                           exc: StateError) -> None:
        """The disk is full and the result cannot be recorded: tell Heat it failed, from
        memory, so the stack does not hang; it is recorded (and not run again) once there is
        room, without a second signal."""
        failed = HookResult.failure(f"deployment {dep.label}: its result could not be "
                                    f"recorded ({exc})", stdout=outcome.stdout,
                                    stderr=outcome.stderr)
        self._unrecorded[dep.key] = failed
        try:
            target = self.outbox.target(dep, self._source_of.get(dep.id))
            signals.send(target, signals.trim(failed.response(), "(not recorded: disk full)"))
        except SignalFailed as again:
            log.error("deployment %s: the disk is full and the failure could not be signalled "
                      "either (the outbox sends it once recorded): %s", dep.label, again)
            return
        self.outbox.sent_unrecorded(dep.key)
        log.error("deployment %s: disk full: signalled as failed from memory", dep.label)

    def _stop_leftover(self, entry: JournalEntry, dep: Deployment) -> None:
        # kill -9 or a crash left the hook running in its own session: never run it twice.
        if entry.hook_pgid is None:
            return
        mark = process.GroupMark(entry.hook_pgid, entry.hook_started, entry.hook_boot_id)
        if process.stop_leftover_group(mark):
            log.warning("deployment %s: stopped the hook process group %d an earlier run of "
                        "the agent left running", dep.label, entry.hook_pgid)

    def _run_hook(self, dep: Deployment, settings: Settings,
                  holder: list[JournalEntry]) -> HookResult:
        def spawned(pid: int) -> None:
            mark = process.mark_group(pid)
            try:
                holder[0] = self.journal.spawned(holder[0], mark.pgid, mark.started,
                                                 mark.boot_id)
                self.statedir.lazy.sync()  # the hook has started: now the caches may wait on disk
            except StateError as exc:  # the hook runs on; only the crash bookkeeping is lost
                log.warning("deployment %s: cannot record the hook's process group: %s",
                            dep.label, exc)

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
            hook = hooks.find(dep.group, settings.hooks_dirs)
            return hook.run(dep, self.hook_context(dep, settings, spawned))
        except (InvalidDeployment, HookNotFound) as exc:
            return HookResult.failure(str(exc))
        except StateError as exc:  # full disk included: this deployment fails, and says why
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

    def hook_context(self, dep: Deployment, settings: Settings,
                     on_spawn: Callable[[int], None] | None = None) -> HookContext:
        """Where the hook for `dep` works, and its limits."""
        work, outputs = hooks.tool_dirs(dep.group, self.statedir.root / "hooks")
        return HookContext(work_dir=work, outputs_dir=outputs,
                           capture_dir=self.statedir.deployment_dir(dep.key),
                           timeout=settings.hook_timeout,
                           hooks_dirs=tuple(settings.hooks_dirs), on_spawn=on_spawn,
                           os_config_dir=settings.os_config_dir)

    def forget(self, entry: JournalEntry, settings: Settings) -> None:
        """A deployment left the metadata: let its hook undo it, stop signalling, drop secrets."""
        raw = self.statedir.load_deployment(entry.key)
        if raw is not None:
            dep = deployments.parse_one(raw)
            try:
                hook = hooks.find(dep.group, settings.hooks_dirs)
                if not dep.problem:
                    hook.cleanup(dep, self.hook_context(dep, settings))
            except GuestAgentError as exc:
                log.warning("deployment %s: cleanup failed: %s", entry.name, exc)
        if entry.signal_pending:
            log.info("deployment %s (%s): gone from metadata; its signal is dropped",
                     entry.name, entry.id)
        self.journal.forget(entry)
        self.statedir.forget_secrets(entry.key)


def _source_of(documents: Mapping[str, dict]) -> dict[str, str]:
    """Deployment id -> the source whose document lists it (the last one, as merged)."""
    found: dict[str, str] = {}
    for name, doc in documents.items():
        for item in doc.get("deployments") or () if isinstance(doc, dict) else ():
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                found[item["id"]] = name
    return found


def _unit_actions(dep: Deployment, outcome: HookResult) -> HookResult:
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


def out_of_space(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a full disk or an exhausted quota."""
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)


def _last_line(text: str, default: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else default
