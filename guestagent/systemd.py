"""Being a well-mannered systemd service: readiness, watchdog, shutdown inhibition, unit actions.

- `Notifier`: sd_notify (READY, WATCHDOG, STOPPING, STATUS) over $NOTIFY_SOCKET;
  a plain datagram socket, no D-Bus needed.
- `Heartbeat`: a thread that pings the watchdog while the loop keeps checking
  in or a deployment runs (hooks have their own timeouts; a long hook is work,
  not a hang).
- `ShutdownInhibitor`: a logind "delay" inhibitor for "shutdown", held while
  deployments run so a reboot waits for the hook (up to logind's
  InhibitDelayMaxSec).
- `apply_unit_actions`: `options.restart_units` / `options.reload_units` of a
  deployment, done through systemd's D-Bus API after the deployment succeeded.

dbus-python is imported only when a bus is needed; where it is missing or
there is no system bus (containers, CI) everything above quietly does nothing
except unit actions, which report that they were skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from guestagent.deployments import Deployment
from guestagent.errors import GuestAgentError, InvalidDeployment

log = logging.getLogger("guestagent.systemd")

LOGIND = ("org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager")
SYSTEMD = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
           "org.freedesktop.systemd1.Manager")
UNIT_IFACE = "org.freedesktop.systemd1.Unit"
JOB_IFACE = "org.freedesktop.systemd1.Job"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
UNIT_TIMEOUT = 120.0
# Unit names as systemd accepts them (name[@instance].type).
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer|path|mount|"
                        r"automount|swap|slice|scope|device)$")


class UnitActionFailed(GuestAgentError):
    """A unit restart or reload a deployment asked for did not succeed; names both."""


# -- sd_notify -------------------------------------------------------------

class Notifier:
    """Send sd_notify messages to systemd; does nothing when not started by systemd."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None):
        self.address = address
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read NOTIFY_SOCKET and WATCHDOG_USEC (honouring WATCHDOG_PID) as systemd set them."""
        environ = os.environ if environ is None else environ
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        watchdog = int(usec) if usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog or None)

    @property
    def watchdog_interval(self) -> float | None:
        """How often to ping: half the watchdog timeout, as sd_watchdog_enabled advises."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` lines in one datagram; False when there is nowhere to send them."""
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), address)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")


class Heartbeat:
    """Ping the watchdog while the agent shows signs of life.

    `beat()` is called by the loop each pass; inside `busy()` (a deployment
    running) pings continue however long it takes. If neither happens for
    `stall_after` seconds the pings stop and systemd restarts the agent.
    """

    def __init__(self, notifier: Notifier, stall_after: float):
        self.notifier = notifier
        self.stall_after = stall_after
        self._last = time.monotonic()
        self._busy = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        interval = self.notifier.watchdog_interval
        if interval and self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(interval,),
                                            name="watchdog", daemon=True)
            self._thread.start()
        return self

    def beat(self) -> None:
        with self._lock:
            self._last = time.monotonic()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._last = time.monotonic()

    def alive(self) -> bool:
        with self._lock:
            return self._busy > 0 or time.monotonic() - self._last < self.stall_after

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self.alive():
                self.notifier.watchdog()
            else:
                log.error("main loop silent for %.0f s; no watchdog ping", self.stall_after)


class ServiceNotifier:
    """What the daemon loop tells systemd: READY after the first pass, watchdog pings, STOPPING.

    `stall_after` must exceed the longest pass (a hook runs up to its timeout),
    unless the agent wraps hook runs in `heartbeat.busy()`.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, stall_after: float = 4200.0):
        self.notifier = Notifier.from_env(environ)
        self.heartbeat = Heartbeat(self.notifier, stall_after).start()
        self._ready = False

    def on_pass(self, result: Any = None) -> None:
        """Call after every pass (Agent.run_forever's on_pass)."""
        self.heartbeat.beat()
        if not self._ready:
            self._ready = True
            failed = len(getattr(result, "failed", ()) or ())
            self.notifier.ready(f"first pass done, {failed} failed" if failed
                                else "first pass done")

    def stopping(self) -> None:
        self.notifier.stopping()
        self.heartbeat.stop()


# -- D-Bus ---------------------------------------------------------------

SYSTEM_BUS_ADDRESS = "unix:path=/run/dbus/system_bus_socket"


def system_bus() -> Any | None:
    """A private connection to the system bus, or None where there is none (or no dbus-python)."""
    try:
        import dbus
    except ImportError:
        log.debug("dbus-python not installed: no shutdown inhibitor or unit actions")
        return None
    # By address, read now: libdbus reads DBUS_SYSTEM_BUS_ADDRESS once per process for
    # SystemBus() and would keep a stale one.
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS_ADDRESS
    try:
        import dbus.bus
        return dbus.bus.BusConnection(address)
    except dbus.exceptions.DBusException as exc:
        log.debug("no system bus: %s", exc.get_dbus_message())
        return None


def _interface(bus: Any, service: tuple[str, str, str]) -> Any:
    import dbus

    name, path, iface = service
    return dbus.Interface(bus.get_object(name, path), iface)


class ShutdownInhibitor:
    """Hold a logind delay inhibitor on shutdown while deployments run."""

    def __init__(self, who: str = "guestagent"):
        self.who = who

    @contextlib.contextmanager
    def hold(self, why: str) -> Iterator[bool]:
        """Inhibit shutdown for the duration of the block; yields whether the lock was taken."""
        fd = self._take(why)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                os.close(fd)

    def _take(self, why: str) -> int | None:
        bus = system_bus()
        if bus is None:
            return None
        import dbus

        try:
            unix_fd = _interface(bus, LOGIND).Inhibit("shutdown", self.who, why, "delay")
            return unix_fd.take()
        except dbus.exceptions.DBusException as exc:
            log.info("no shutdown inhibitor (logind: %s)", exc.get_dbus_message())
            return None
        finally:
            bus.close()


@dataclass(frozen=True)
class UnitAction:
    """One unit restart or reload asked for by a deployment."""

    verb: str     # "restart" or "reload"
    unit: str


def unit_actions(dep: Deployment) -> list[UnitAction]:
    """The unit actions in `options.restart_units` / `options.reload_units`, validated."""
    actions = []
    for key, verb in (("restart_units", "restart"), ("reload_units", "reload")):
        value = dep.options.get(key)
        if value is None:
            continue
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list):
            raise InvalidDeployment(dep.label, f"options.{key}", "must be a list of unit names")
        for pos, name in enumerate(names):
            if not isinstance(name, str) or not _UNIT_NAME.match(name):
                raise InvalidDeployment(dep.label, f"options.{key}[{pos}]",
                                        f"{name!r} is not a systemd unit name like app.service")
            actions.append(UnitAction(verb, name))
    return actions


def apply_unit_actions(dep: Deployment, timeout: float = UNIT_TIMEOUT) -> list[str]:
    """Restart/reload the units a succeeded deployment names; one line per unit for its log.

    Raises InvalidDeployment for bad options and UnitActionFailed when systemd
    refuses or a unit does not come back active. Without a system bus the
    actions are skipped (and say so).
    """
    actions = unit_actions(dep)
    if not actions:
        return []
    bus = system_bus()
    if bus is None:
        return [f"{a.verb} {a.unit}: skipped, no system bus" for a in actions]
    try:
        return [_apply(bus, dep, action, timeout) for action in actions]
    finally:
        bus.close()


def _apply(bus: Any, dep: Deployment, action: UnitAction, timeout: float) -> str:
    import dbus

    manager = _interface(bus, SYSTEMD)
    method = manager.RestartUnit if action.verb == "restart" else manager.ReloadUnit
    try:
        job = method(action.unit, "replace")
        _wait_for_job(bus, job, timeout)
        unit_path = manager.GetUnit(action.unit)
        props = dbus.Interface(bus.get_object(SYSTEMD[0], unit_path), PROPS_IFACE)
        state = str(props.Get(UNIT_IFACE, "ActiveState"))
    except dbus.exceptions.DBusException as exc:
        raise UnitActionFailed(f"deployment {dep.label}: {action.verb} {action.unit}: "
                               f"{exc.get_dbus_message()}") from exc
    if state != "active":
        raise UnitActionFailed(f"deployment {dep.label}: {action.verb} {action.unit}: "
                               f"unit is {state} afterwards")
    return f"{action.verb} {action.unit}: active"


def _wait_for_job(bus: Any, job_path: str, timeout: float) -> None:
    """Wait until systemd has finished the job (its object disappears)."""
    import dbus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            dbus.Interface(bus.get_object(SYSTEMD[0], job_path), PROPS_IFACE).Get(JOB_IFACE, "State")
        except dbus.exceptions.DBusException:
            return  # no such job any more: it finished
        time.sleep(0.1)
    raise UnitActionFailed(f"systemd job {job_path} still running after {timeout:g} s")
