"""A private podman for tests: its own storage and run roots, busybox imported, no registry.

Debian's podman runs as root with the vfs driver and cgroupfs; containers use
`--net=none` or `--net=host` (no bridge is set up). Its containers.conf drops
podman's default nofile ulimit, which this sandbox does not allow raising.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.support.dockerd import BUSYBOX, IMAGE, busybox_rootfs


def missing() -> str | None:
    """Why a private podman cannot run here, or None."""
    if not shutil.which("podman"):
        return "podman not installed (scripts/setup-test-env.sh installs it)"
    if not BUSYBOX.exists():
        return "busybox-static not installed (scripts/setup-test-env.sh installs it)"
    if os.geteuid() != 0:
        return "the private podman runs as root"
    return None


class Podman:
    """One private podman store; `command` is what HEAT_DOCKER_CMD is set to."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.argv = ["podman", "--root", str(self.root / "storage"),
                     "--runroot", str(self.root / "run"), "--storage-driver", "vfs",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--tmpdir", str(self.root / "tmp")]
        self.command = shlex.join(self.argv)
        conf = self.root / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        self.conf = str(conf)

    def env(self) -> dict[str, str]:
        """Our environment with podman's configuration pointed at ours."""
        return {**os.environ, "CONTAINERS_CONF": self.conf}

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv + list(args), env=self.env(), capture_output=True,
                              text=True, timeout=120, check=check)

    def import_busybox(self) -> str:
        tar_path = busybox_rootfs(self.root / "rootfs.tar")
        self.podman("import", "--change", 'CMD ["/bin/sh"]', str(tar_path), IMAGE)
        return IMAGE

    def stop(self) -> None:
        """Remove every container of this store, then the store (our own directories only;
        no `system reset`, which also touches machine-wide network definitions)."""
        ids = self.podman("ps", "-aq", check=False).stdout.split()
        if ids:
            self.podman("rm", "-f", *ids, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
