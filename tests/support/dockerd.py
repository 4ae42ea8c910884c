"""A private Docker engine for tests: dockerd in its own network namespace and data root.

Started with nsenter (not `ip netns exec`, which hides the cgroup mounts), on a
socket in a temp dir, so it never touches a Docker the machine may run. No
registry is reachable: `import_busybox` builds a tiny image from busybox-static.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
IMAGE = "local/busybox"
# Applets the test containers use; each becomes a symlink to busybox.
APPLETS = ("sh", "sleep", "cat", "echo", "env", "ls", "true", "false", "printenv", "touch")


def missing() -> str | None:
    """Why a private engine cannot start here, or None."""
    for tool in ("dockerd", "docker", "nsenter", "ip"):
        if not shutil.which(tool):
            return f"{tool} not installed (scripts/setup-test-env.sh installs docker.io)"
    if not BUSYBOX.exists():
        return "busybox-static not installed (scripts/setup-test-env.sh installs it)"
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    return None


class Dockerd:
    """One private engine; `host` is its DOCKER_HOST."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.netns = f"ga-dk-{os.getpid()}"
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        """Our environment pointed at this engine."""
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the docker CLI against this engine."""
        return subprocess.run(["docker", *args], env=self.env(), capture_output=True, text=True,
                              timeout=120, check=check)

    def start(self, timeout: float = 60.0) -> None:
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        log = open(self.root / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "dockerd",
             "--host", self.host, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {self.log_tail()}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)  # polling a real condition (the API answers), bounded by deadline
        raise RuntimeError(f"dockerd not ready after {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")[-3000:]

    def import_busybox(self) -> str:
        """Import a busybox root filesystem as IMAGE; returns the image name."""
        tar_path = busybox_rootfs(self.root / "rootfs.tar")
        self.docker("import", "--change", 'CMD ["/bin/sh"]', str(tar_path), IMAGE)
        return IMAGE

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Our own child's group (nsenter + dockerd), by id.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        subprocess.run(["ip", "netns", "delete", self.netns], check=False)
        for mount in self._mounts():
            # dockerd leaves its data-root bind mount and netns file mounted; ours only.
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.root / "data", ignore_errors=True)

    def _mounts(self) -> list[str]:
        """Mount points under our root, deepest first."""
        prefix = f"{self.root}/"
        with open("/proc/self/mountinfo") as fh:
            points = [line.split()[4] for line in fh]
        return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def busybox_rootfs(tar_path: Path) -> Path:
    """Write a root filesystem tar of busybox-static and its applets (any engine imports it)."""
    with tarfile.open(tar_path, "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        for directory in ("tmp", "etc", "data"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        passwd = b"root:x:0:0:root:/:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return tar_path
