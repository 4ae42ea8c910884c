"""systemd integration: sd_notify on a real datagram socket, logind and systemd on a private
D-Bus (python-dbusmock), and quiet degradation without a bus."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from guestagent import systemd
from guestagent.deployments import parse_one
from guestagent.errors import InvalidDeployment

dbus = pytest.importorskip("dbus", reason="dbus-python is installed by scripts/setup-test-env.sh")
dbusmock = pytest.importorskip("dbusmock")
from dbusmock.testcase import BusType, PrivateDBus, SpawnedMock  # noqa: E402

UNIT_IFACE = "org.freedesktop.systemd1.Unit"


# -- sd_notify -------------------------------------------------------------

@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def test_notify_messages(notify_socket):
    path, sock = notify_socket
    notifier = systemd.Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.ready("first pass done: 2 deployments")
    assert sock.recv(4096) == b"READY=1\nSTATUS=first pass done: 2 deployments"
    assert notifier.watchdog() and sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping() and sock.recv(4096) == b"STOPPING=1"


def test_notify_abstract_socket():
    name = f"guestagent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert systemd.Notifier(f"@{name}").ready()
        assert sock.recv(100) == b"READY=1"


def test_notify_without_systemd_is_a_no_op(tmp_path):
    assert systemd.Notifier.from_env({}).ready() is False
    # A socket that went away is not an error either.
    assert systemd.Notifier(str(tmp_path / "gone")).watchdog() is False


def test_watchdog_interval_and_pid():
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "20000000"}
    assert systemd.Notifier.from_env(env).watchdog_interval == 10.0
    assert systemd.Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval
    assert systemd.Notifier.from_env({**env, "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_heartbeat_pings_while_alive_and_stops_when_stalled(notify_socket):
    path, sock = notify_socket
    notifier = systemd.Notifier(path, watchdog_usec=200_000)  # ping every 0.1 s
    beat = systemd.Heartbeat(notifier, stall_after=0.5).start()
    try:
        assert sock.recv(100) == b"WATCHDOG=1"
        # No beat() for longer than stall_after: the pings must stop.
        deadline = time.monotonic() + 5
        while beat.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not beat.alive()
        sock.settimeout(0.1)
        while True:  # drain what was sent before the stall
            try:
                sock.recv(100)
            except socket.timeout:
                break
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(100)
        # A running deployment counts as life, however long it runs.
        with beat.busy():
            sock.settimeout(5)
            assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        beat.stop()


# -- D-Bus -----------------------------------------------------------------

@pytest.fixture(scope="module")
def system_bus():
    saved = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    with PrivateDBus(BusType.SYSTEM) as bus:
        yield bus
    if saved is None:
        os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    else:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = saved


@pytest.fixture
def logind(system_bus):
    with SpawnedMock.spawn_with_template("logind") as mock:
        yield mock.obj


@pytest.fixture
def systemd_mock(system_bus):
    with SpawnedMock.spawn_with_template("systemd") as mock:
        obj = mock.obj
        for unit in ("app.service", "web.service"):
            obj.AddMockUnit(unit, dbus_interface=dbusmock.MOCK_IFACE)
        for method, state in (("RestartUnit", "active"), ("ReloadUnit", "active")):
            obj.AddMethod("org.freedesktop.systemd1.Manager", method, "ss", "o", textwrap.dedent(f"""
                if args[0] not in self.units:
                    raise dbus.exceptions.DBusException(
                        'Unit ' + args[0] + ' not found.',
                        name='org.freedesktop.systemd1.NoSuchUnit')
                objects[self.units[args[0]]].UpdateProperties(
                    '{UNIT_IFACE}', {{'ActiveState': '{state}'}})
                ret = '/org/freedesktop/systemd1/job/' + str(len(self.units) + 100)
            """), dbus_interface=dbusmock.MOCK_IFACE)
        yield obj


def inhibitors(logind_obj) -> list:
    return [tuple(str(x) for x in i[:4])
            for i in logind_obj.ListInhibitors(dbus_interface="org.freedesktop.login1.Manager")]


def test_shutdown_inhibitor_held_only_during_block(logind):
    assert inhibitors(logind) == []
    with systemd.ShutdownInhibitor().hold("running deployment web (1234)") as taken:
        assert taken
        assert inhibitors(logind) == [
            ("shutdown", "guestagent", "running deployment web (1234)", "delay")]
    # Releasing is closing our descriptor; logind notices asynchronously.
    deadline = time.monotonic() + 5
    while inhibitors(logind) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inhibitors(logind) == []


def deployment(options: dict):
    return parse_one({"id": "d1", "name": "web", "group": "script", "config": "", "options": options})


def unit_state(systemd_obj, unit: str) -> str:
    bus = dbus.SystemBus(private=True)
    try:
        path = systemd_obj.GetUnit(unit, dbus_interface="org.freedesktop.systemd1.Manager")
        props = dbus.Interface(bus.get_object("org.freedesktop.systemd1", path),
                               "org.freedesktop.DBus.Properties")
        return str(props.Get(UNIT_IFACE, "ActiveState"))
    finally:
        bus.close()


def test_restart_and_reload_units(systemd_mock):
    assert unit_state(systemd_mock, "app.service") == "inactive"
    lines = systemd.apply_unit_actions(deployment(
        {"restart_units": ["app.service"], "reload_units": "web.service"}))
    assert lines == ["restart app.service: active", "reload web.service: active"]
    assert unit_state(systemd_mock, "app.service") == "active"
    calls = systemd_mock.GetCalls(dbus_interface=dbusmock.MOCK_IFACE)
    names = [(str(c[1]), [str(a) for a in c[2]]) for c in calls
             if str(c[1]) in ("RestartUnit", "ReloadUnit")]
    assert names == [("RestartUnit", ["app.service", "replace"]),
                     ("ReloadUnit", ["web.service", "replace"])]


def test_unknown_unit_fails_naming_deployment_and_unit(systemd_mock):
    with pytest.raises(systemd.UnitActionFailed, match=r"web \(d1\): restart nope.service: "
                                                       r"Unit nope.service not found"):
        systemd.apply_unit_actions(deployment({"restart_units": ["nope.service"]}))


@pytest.mark.parametrize("options,field", [
    ({"restart_units": "not a unit"}, "options.restart_units[0]"),
    ({"reload_units": {"a": 1}}, "options.reload_units"),
    ({"restart_units": ["ok.service", 3]}, "options.restart_units[1]"),
])
def test_bad_unit_options(options, field):
    with pytest.raises(InvalidDeployment) as err:
        systemd.unit_actions(deployment(options))
    assert err.value.field == field and "web (d1)" in str(err.value)


def test_no_system_bus_degrades_quietly(tmp_path):
    # A fresh process: libdbus reads the bus address once per process.
    code = textwrap.dedent("""
        import json
        from guestagent import systemd
        from guestagent.deployments import parse_one
        dep = parse_one({"id": "d1", "group": "script", "config": "",
                         "options": {"restart_units": ["app.service"]}})
        with systemd.ShutdownInhibitor().hold("x") as taken:
            pass
        print(json.dumps([taken, systemd.apply_unit_actions(dep)]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"}
    env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={tmp_path}/no-bus"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, ["restart app.service: skipped, no system bus"]]


def test_daemon_sends_ready_after_first_pass_and_stopping(tmp_path, notify_socket):
    from tests.support.agent import start_agent

    path, sock = notify_socket
    local = tmp_path / "local"
    local.mkdir(mode=0o700)
    proc = start_agent(tmp_path / "state", "--collectors", "local", "--local-path", str(local),
                       "--polling-interval", "1", env={"NOTIFY_SOCKET": path},
                       log=tmp_path / "agent.log")
    try:
        sock.settimeout(30)
        message = sock.recv(4096).decode()
        assert message.startswith("READY=1\nSTATUS=first pass done"), message
        proc.terminate()
        assert proc.wait(timeout=30) == 0, (tmp_path / "agent.log").read_text()
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
