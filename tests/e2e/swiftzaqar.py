"""The lab's Swift and Zaqar seen from the tests: set up, start and stop them, read their state.

The services are built and run by ``tests/e2e/lab/swiftzaqar/sz.sh`` beside the
Keystone + Heat lab (same lab directory, own subdirectory); this module calls it
and reads the same ``sz.env``.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.labctl import SCRIPTS, Lab, LabError, env_file

SZ = SCRIPTS / "swiftzaqar" / "sz.sh"
SERVICES = ("redis", "swift-account", "swift-container", "swift-object", "swift-proxy",
            "zaqar-wsgi", "zaqar-ws")
SETUP_TIMEOUT = 1200  # a cold install of both venvs from the package index
TIMEOUT = 120


def settings() -> dict[str, str]:
    """The KEY=value pairs of sz.env (ports, service passwords)."""
    return env_file(SZ.parent / "sz.env")


@dataclass(frozen=True)
class SwiftZaqar:
    """Where the services live and how to drive them."""

    lab: Lab
    env: dict[str, str]

    @property
    def dir(self) -> Path:
        return self.lab.dir / "swiftzaqar"

    @property
    def zaqar_url(self) -> str:
        return f"http://{self.lab.env['LAB_HOST']}:{self.env['ZAQAR_PORT']}"

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.lab.env['LAB_HOST']}:{self.env['ZAQAR_WS_PORT']}"

    def run(self, *args: str, timeout: float = TIMEOUT) -> str:
        """Run sz.sh with ``args``; its output (kept in the lab's logs too). Raises LabError."""
        try:
            done = subprocess.run(["bash", str(SZ), *args], capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, env=self.lab.script_env(),
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(f"sz.sh {' '.join(args)} did not finish in {timeout:.0f} s") from None
        output = done.stdout + done.stderr
        if (self.dir / "logs").is_dir():
            with open(self.dir / "logs" / "sz.sh.out", "a") as log:
                log.write(output)
        if done.returncode != 0 and args[0] != "status":
            tail = "".join(output.splitlines(keepends=True)[-25:])
            raise LabError(f"sz.sh {' '.join(args)} failed ({done.returncode}):\n{tail}")
        return output

    def running(self) -> bool:
        """True when every service runs (by sz.sh status)."""
        return "not running" not in self.run("status")

    def pid(self, service: str) -> int | None:
        """The PID of a running service, None when it is not running."""
        try:
            return int((self.dir / "run" / f"{service}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def rss_kib(self) -> dict[str, int]:
        """Resident memory of each running service, in KiB (from /proc)."""
        sizes = {}
        for service in SERVICES:
            pid = self.pid(service)
            try:
                status = Path(f"/proc/{pid}/status").read_text() if pid else ""
            except FileNotFoundError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    sizes[service] = int(line.split()[1])
        return sizes

    def stop(self, *services: str) -> None:
        self.run("stop", *services)

    def start(self, *services: str) -> float:
        """Start services (all by default); the seconds it took until they listen."""
        started = time.monotonic()
        self.run("start", *services)
        return time.monotonic() - started


def current(lab: Lab) -> SwiftZaqar:
    return SwiftZaqar(lab, settings())


def ensure_running(services: SwiftZaqar) -> bool:
    """Set up (re-using the venvs) and start; True when this call started them. LabError."""
    was_running = services.running()
    services.run("setup", timeout=SETUP_TIMEOUT)
    return not was_running
