"""Build a bootable guestagent image: kernel, initrd and an ext4 root filesystem file.

The steps, each timed (``Image.times``):
1. a cached ``debootstrap`` tree (tests/support/debootstrap.py) holding a kernel, systemd and
   what the guestagent element asks for (its package-installs.yaml);
2. the element installed in it by its own hook scripts: ``extra-data.d`` on this host (wheels
   into the tree's ``/tmp/in_target.d``), then ``install.d`` chrooted, with ``environment.d``
   sourced, as diskimage-builder runs them;
3. what the test cloud adds (``cloud_glue``): a static address on eth0, the lab's
   127.0.0.1 ports sent to the gateway, a boot marker on the second serial port;
4. ``mkfs.ext4 -d`` makes the root filesystem straight from the tree (no loop device);
   the kernel and initrd are copied out for qemu's ``-kernel`` / ``-initrd``.

    python -m tests.vm.image OUTDIR     # builds OUTDIR/{rootfs.img,vmlinuz,initrd.img}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import debootstrap
from tests.vm import netns

REPO = Path(__file__).resolve().parents[2]
ELEMENT = REPO / "diskimage-elements" / "guestagent"
# Kernel, init and what systemd, the element and the test cloud need in the guest.
BASE_PACKAGES = ("linux-image-cloud-amd64", "initramfs-tools", "systemd", "systemd-sysv",
                 "udev", "dbus", "kmod", "python3", "python3-venv", "nftables")
# The second serial port: deployment scripts and the boot marker write there.
LOG_PORT = "/dev/ttyS1"


class ImageError(RuntimeError):
    """A step of the image build failed; the message names it and carries its output."""


@dataclass
class Image:
    """A built image: what qemu boots, and how long each step took (seconds)."""

    dir: Path
    times: dict[str, float] = field(default_factory=dict)

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs.img"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    def exists(self) -> bool:
        """True when all three files are there (a build finished)."""
        return all(path.is_file() for path in (self.rootfs, self.kernel, self.initrd))


def element_packages() -> tuple[str, ...]:
    """The packages the guestagent element installs (package-installs.yaml, Debian names)."""
    names = []
    for line in (ELEMENT / "package-installs.yaml").read_text().splitlines():
        if line and not line.startswith((" ", "#")) and line.rstrip().endswith(":"):
            names.append(line.rstrip()[:-1])
    return tuple(names)


def packages() -> tuple[str, ...]:
    """Everything the debootstrap tree includes."""
    return tuple(dict.fromkeys(BASE_PACKAGES + element_packages()))


def base_tarball() -> Path:
    """The cached debootstrap tree; the name changes with the package list."""
    digest = hashlib.sha256(",".join(packages()).encode()).hexdigest()[:10]
    return debootstrap.root_tarball(f"vm-{digest}", packages())


def _run(step: str, argv: list[str], env: dict | None = None, timeout: float = 900) -> None:
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ImageError(f"{step}: no end within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise ImageError(f"{step} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")


def install_element(root: Path, python: str = sys.executable) -> None:
    """Run the guestagent element's own hooks into ``root``, the way disk-image-create does."""
    in_target = root / "tmp" / "in_target.d"
    in_target.mkdir(parents=True, exist_ok=True)
    # extra-data.d runs on the build host; it only needs this one dib function
    env = {**os.environ, "TMP_HOOKS_PATH": str(in_target), "DIB_GUESTAGENT_BUILD_PYTHON": python,
           "BASH_FUNC_get_image_element_array%%": f"() {{ echo '[guestagent]={ELEMENT}'; }}"}
    for hook in sorted((ELEMENT / "extra-data.d").iterdir()):
        _run(f"extra-data.d/{hook.name}", ["bash", str(hook)], env=env)
    for phase in ("environment.d", "install.d"):
        shutil.copytree(ELEMENT / phase, in_target / phase, dirs_exist_ok=True)
    script = ("set -e; set -a; for f in /tmp/in_target.d/environment.d/*; do . \"$f\"; done; "
              "set +a; for f in /tmp/in_target.d/install.d/*; do bash \"$f\"; done")
    done = debootstrap.chroot(root, script)
    if done.returncode != 0:
        raise ImageError(f"install.d in the chroot failed ({done.returncode}):\n"
                         f"{(done.stdout + done.stderr)[-4000:]}")
    shutil.rmtree(in_target)


def cloud_glue(root: Path) -> None:
    """What the test cloud gives the image: root device, network, the lab's ports, boot marker."""
    etc = root / "etc"
    (etc / "fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (etc / "hostname").write_text("guestagent-vm\n")
    (etc / "systemd/network").mkdir(parents=True, exist_ok=True)
    (etc / "systemd/network/10-eth0.network").write_text(
        f"[Match]\nName=eth0\n\n[Network]\nAddress={netns.GUEST_ADDRESS}/{netns.PREFIX}\n"
        f"Gateway={netns.GATEWAY}\n")
    # The lab's URLs say 127.0.0.1 (Heat hands the guest those): send the lab's ports on to
    # the gateway, where the namespace's relay listens. route_localnet lets 127/8 leave lo.
    ports = ", ".join(str(port) for port in netns.LAB_PORTS)
    (etc / "nftables.conf").write_text(
        "#!/usr/sbin/nft -f\nflush ruleset\ntable ip lab {\n"
        "  chain output {\n    type nat hook output priority -100; policy accept;\n"
        f"    ip daddr 127.0.0.1 tcp dport {{ {ports} }} dnat to {netns.GATEWAY}\n  }}\n"
        "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n"
        f"    oifname \"eth0\" ip saddr 127.0.0.0/8 snat to {netns.GUEST_ADDRESS}\n  }}\n}}\n")
    (etc / "sysctl.d/60-lab-loopback.conf").write_text("net.ipv4.conf.all.route_localnet = 1\n")
    (etc / "systemd/system/lab-boot-marker.service").write_text(
        "[Unit]\nDescription=lab: mark each boot on the deployment log port\n"
        "DefaultDependencies=no\nBefore=guestagent.service\n\n"
        "[Service]\nType=oneshot\n"
        f"ExecStart=/bin/sh -c 'echo \"boot $(cat /proc/sys/kernel/random/boot_id)\" > {LOG_PORT}'\n"
        "\n[Install]\nWantedBy=multi-user.target\n")
    done = debootstrap.chroot(root, "systemctl enable systemd-networkd nftables lab-boot-marker "
                                    "&& passwd -l root && rm -f /etc/resolv.conf")
    if done.returncode != 0:
        raise ImageError(f"enabling units failed:\n{(done.stdout + done.stderr)[-4000:]}")


def make_rootfs(root: Path, out: Path) -> None:
    """An ext4 filesystem image holding ``root``, made without a loop device (mkfs.ext4 -d)."""
    used = int(subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    size_mb = used * 13 // 10 // 2**20 + 512  # room for the agent's state and the journal
    out.unlink(missing_ok=True)
    _run("mkfs.ext4 -d", ["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(out),
                          f"{size_mb}M"])


def build(out: Path, python: str = sys.executable) -> Image:
    """Build the image into ``out`` (a directory); returns it with each step's time."""
    image = Image(out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "tree"
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    tar = base_tarball()
    image.times["debootstrap (cached tarball)"] = time.monotonic() - started
    step = time.monotonic()
    root = debootstrap.extract(tar, work)
    image.times["extract"] = time.monotonic() - step
    step = time.monotonic()
    install_element(root, python)
    image.times["guestagent element"] = time.monotonic() - step
    step = time.monotonic()
    cloud_glue(root)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise ImageError(f"no kernel or initrd in {root / 'boot'}: {os.listdir(root / 'boot')}")
    shutil.copy(kernels[-1], image.kernel)
    shutil.copy(initrds[-1], image.initrd)
    make_rootfs(root, image.rootfs)
    image.times["mkfs.ext4 -d"] = time.monotonic() - step
    shutil.rmtree(work)
    image.times["total"] = time.monotonic() - started
    (out / "build-times.json").write_text(json.dumps(image.times, indent=1) + "\n")
    return image


def main() -> int:
    """``python -m tests.vm.image OUTDIR``: build, print each step's seconds."""
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    why = debootstrap.missing()
    if why:
        print(f"cannot build here: {why}", file=sys.stderr)
        return 1
    image = build(Path(sys.argv[1]).resolve())
    for step, took in image.times.items():
        print(f"{took:7.1f} s  {step}")
    print(f"image: {image.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
