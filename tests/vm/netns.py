"""The VM's network: a network namespace of the test's own, a tap device, a relay to the lab.

The namespace holds only ``lo`` and the tap qemu attaches to (no route out of it), so
nothing the guest sends can leave the machine. The tap side is the guest's gateway; on it
a relay listens on the lab's ports (Keystone 5000, heat-api 8004, heat-api-cfn 8000) and
passes each connection to the same port on this host's 127.0.0.1, where the lab listens.
The listening sockets are made inside the namespace by a thread that enters it with
setns(2) and leaves again; every other socket of the relay lives in the host's namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from pathlib import Path

GUEST_ADDRESS = "10.0.2.15"
GATEWAY = "10.0.2.2"
PREFIX = 24
LAB_PORTS = (5000, 8004, 8000)
TAP = "vmtap0"
GUEST_MAC = "52:54:00:12:34:56"
CLONE_NEWNET = 0x40000000
CHUNK = 65536


class NetnsError(RuntimeError):
    """The namespace, its tap device or the relay could not be set up."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(errno)}")


class Namespace:
    """``ip netns add <name>`` with a tap device as the guest's gateway; ``close`` removes it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = Path("/run/netns") / name
        _ip("netns", "add", name)
        try:
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "tuntap", "add", "dev", TAP, "mode", "tap")
            _ip("-n", name, "addr", "add", f"{GATEWAY}/{PREFIX}", "dev", TAP)
            _ip("-n", name, "link", "set", TAP, "up")
        except NetnsError:
            self.close()
            raise

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def listen(self, address: str, port: int) -> socket.socket:
        """A TCP socket listening on ``address:port`` inside the namespace."""
        made: list[socket.socket] = []
        failed: list[BaseException] = []

        def enter_and_bind() -> None:
            # setns changes the calling thread only: this thread goes in and never comes back
            try:
                with open(self.path) as handle:
                    _setns(handle.fileno())
                made.append(socket.create_server((address, port)))
            except (OSError, NetnsError) as error:
                failed.append(error)

        worker = threading.Thread(target=enter_and_bind, name=f"netns-bind-{port}")
        worker.start()
        worker.join()
        if failed:
            raise NetnsError(f"listen on {address}:{port} in {self.name}: {failed[0]}")
        return made[0]

    def close(self) -> None:
        """Delete the namespace (its tap device goes with it)."""
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True, timeout=30)


class Relay:
    """Listens on the gateway in the namespace; each connection goes on to host 127.0.0.1."""

    def __init__(self, namespace: Namespace, ports: tuple[int, ...] = LAB_PORTS) -> None:
        self.listeners = {port: namespace.listen(GATEWAY, port) for port in ports}
        self.connections: dict[int, int] = {port: 0 for port in ports}  # accepted per port
        self._closing = threading.Event()
        for port, listener in self.listeners.items():
            threading.Thread(target=self._accept, args=(port, listener), daemon=True,
                             name=f"relay-{port}").start()

    def _accept(self, port: int, listener: socket.socket) -> None:
        while not self._closing.is_set():
            try:
                inside, _ = listener.accept()
            except OSError:
                return  # closed
            self.connections[port] += 1
            try:
                outside = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                inside.close()  # the lab is down: the guest sees a reset, as from a dead server
                continue
            outside.settimeout(None)
            pair = _Pair(inside, outside)
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=pair.pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        """Stop accepting (connections in flight end with their peers)."""
        self._closing.set()
        for listener in self.listeners.values():
            listener.close()


class _Pair:
    """One relayed connection: two pumps; the last one to finish closes both sockets."""

    def __init__(self, inside: socket.socket, outside: socket.socket) -> None:
        self.ends = (inside, outside)
        self.running = 2
        self.lock = threading.Lock()

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy one direction until end of stream, then pass the half-close on."""
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            # one side reset: end the other too, as a router's connection would
            for end in self.ends:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already down
        with self.lock:
            self.running -= 1
            last = self.running == 0
        if last:
            for end in self.ends:
                end.close()
