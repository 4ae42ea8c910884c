"""Debian root trees for tests: debootstrap once, cache the tarball, extract a fresh copy per use."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("GUESTAGENT_TEST_CACHE", "/var/cache/guestagent-tests"))
RELEASE = "bookworm"


def missing() -> str | None:
    """Why a root cannot be built here, or None."""
    if os.geteuid() != 0:
        return "debootstrap and chroot need root"
    for tool in ("debootstrap", "chroot", "unshare"):
        if not shutil.which(tool):
            return f"{tool} not installed (scripts/setup-test-env.sh installs it)"
    return None


def mirror() -> str:
    """The Debian mirror this machine's apt uses (so tests name no host themselves)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line and "debian" in line:
                return line.split()[1]
    for line in Path("/etc/apt/sources.list").read_text().splitlines():
        if line.startswith("deb ") and "security" not in line:
            return line.split()[1]
    raise RuntimeError("no Debian mirror configured for apt")


def root_tarball(name: str, include: tuple[str, ...]) -> Path:
    """A cached `debootstrap --variant=minbase` tree with `include`d packages, as a tarball."""
    tar = CACHE / f"{RELEASE}-{name}.tar"
    if tar.exists():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(include)}",
                        RELEASE, str(root), mirror()], check=True, capture_output=True,
                       timeout=1200)
        partial = Path(tmp) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True,
                       timeout=600)
        os.replace(partial, tar)
    return tar


def extract(tar: Path, dest: Path) -> Path:
    """A fresh tree from a tarball, with the host's resolver so apt works inside."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", str(dest), "-xf", str(tar)], check=True, timeout=600)
    shutil.copy("/etc/resolv.conf", dest / "etc/resolv.conf")
    return dest


def chroot(root: Path, script: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a shell script chrooted in `root` with /dev and /proc mounted (private mount ns)."""
    wrapper = ('set -e; mount --make-rprivate /; mount --bind /dev "$1/dev"; '
               'mount -t proc proc "$1/proc"; exec chroot "$1" /bin/sh -c "$2"')
    return subprocess.run(["unshare", "-m", "sh", "-c", wrapper, "chroot", str(root), script],
                          capture_output=True, text=True, timeout=timeout)
