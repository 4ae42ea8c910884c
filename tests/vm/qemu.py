"""Boot the image with qemu-system-x86_64 inside the test's network namespace.

- KVM when ``/dev/kvm`` works, else TCG (software emulation); ``GUESTAGENT_VM_ACCEL=kvm|tcg``
  forces one. KVM "works" when qemu starts with it and the kernel prints its first line
  within ``KVM_PROBE`` seconds (nested KVM can open fine and then hang or fail to emulate
  an instruction); otherwise qemu is stopped and started again with TCG. ``VM.accel`` says
  which ran (asked of qemu over QMP, not assumed), ``VM.kvm_failure`` why KVM was left.
- Serial port 0 (the console, with the journal forwarded to it) goes to ``console.log``,
  serial port 1 to ``ttyS1.log``: a file outside the guest, so what deployment scripts write
  there survives the guest's reboots and crashes.
- Disks: the root filesystem with ``snapshot=on`` (the built image is never written; the
  overlay lives as long as the qemu process, across guest reboots) and the config drive,
  read-only; both virtio.
- QMP on a unix socket: ask for KVM, press ctrl-alt-del, reset, quit.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

from tests.vm.image import Image
from tests.vm.netns import GUEST_MAC, TAP, Namespace

KERNEL_ARGS = ("root=/dev/vda rw console=ttyS0 net.ifnames=0 "
               "systemd.journald.forward_to_console=1")
MEMORY_MB = 1024
KVM_PROBE = 20.0  # seconds for a KVM guest's kernel to print its first line
KERNEL_FIRST_LINE = "Linux version"
QMP_TIMEOUT = 30


class VMError(RuntimeError):
    """qemu did not start, stopped early, or a wait on the guest ran out."""


def kvm_works() -> bool:
    """True when this process may open /dev/kvm read-write."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return False
    return True


class VM:
    """One qemu process; ``start`` boots it, ``stop`` ends it."""

    def __init__(self, image: Image, drive: Path, namespace: Namespace, work: Path) -> None:
        self.image = image
        self.drive = drive
        self.namespace = namespace
        self.work = work
        self.console = work / "console.log"
        self.ttys1 = work / "ttyS1.log"
        self.qmp_path = work / "qmp.sock"
        self.process: subprocess.Popen | None = None
        self.accel = ""
        self.kvm_failure = ""
        self.started_at = 0.0  # time.monotonic() when the qemu that runs the guest started

    def argv(self, accel: str) -> list[str]:
        """The qemu command line for ``accel`` (kvm or tcg)."""
        return ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
                "-machine", "q35", "-accel", accel, "-cpu", "host" if accel == "kvm" else "max",
                "-smp", "1", "-m", str(MEMORY_MB),
                "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
                "-append", KERNEL_ARGS,
                "-drive", f"file={self.image.rootfs},format=raw,if=virtio,snapshot=on",
                "-drive", f"file={self.drive},format=raw,if=virtio,readonly=on",
                "-netdev", f"tap,id=net0,ifname={TAP},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=net0,mac={GUEST_MAC}",
                "-device", "virtio-rng-pci",
                "-serial", f"file:{self.console}", "-serial", f"file:{self.ttys1}",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]

    def start(self) -> None:
        """Start qemu; returns once QMP answers (the guest is booting)."""
        forced = os.environ.get("GUESTAGENT_VM_ACCEL")
        if forced or not kvm_works():
            self._start(forced or "tcg")
            if not forced:
                self.kvm_failure = "/dev/kvm cannot be opened read-write"
        else:
            try:
                self._start("kvm")
                self._wait(lambda: KERNEL_FIRST_LINE in self.console_text(),
                           "the kernel's first line under KVM", KVM_PROBE)
            except VMError as error:
                self.kvm_failure = str(error).split(";")[0]
                self.stop()
                self.console.unlink(missing_ok=True)
                self._start("tcg")
        self.accel = "kvm" if self.qmp("query-kvm")["enabled"] else "tcg"

    def _start(self, accel: str) -> None:
        self.qmp_path.unlink(missing_ok=True)
        self.started_at = time.monotonic()
        with open(self.work / f"qemu-{accel}.log", "wb") as log:
            self.process = subprocess.Popen(self.namespace.exec_argv(self.argv(accel)),
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + QMP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = (self.work / f"qemu-{accel}.log").read_text(errors="replace")
                raise VMError(f"qemu ({accel}) exited with {self.process.returncode}: "
                              f"{output[-2000:]}")
            try:
                self.qmp("query-status")
                return
            except OSError:
                time.sleep(0.05)  # the socket is not there yet
        raise VMError(f"qemu ({accel}) gave no QMP socket in {QMP_TIMEOUT} s")

    def qmp(self, command: str, **arguments: object) -> dict:
        """One QMP command on a fresh connection; its ``return`` value."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(QMP_TIMEOUT)
            sock.connect(str(self.qmp_path))
            lines = sock.makefile("rwb")
            json.loads(lines.readline())  # the greeting
            for execute, args in (("qmp_capabilities", {}), (command, arguments)):
                lines.write(json.dumps({"execute": execute, "arguments": args}).encode() + b"\n")
                lines.flush()
                while True:
                    reply = json.loads(lines.readline())
                    if "event" in reply:
                        continue  # asynchronous; not an answer
                    if "error" in reply:
                        raise VMError(f"QMP {execute}: {reply['error']}")
                    break
            return reply["return"]

    def ctrl_alt_del(self) -> None:
        """Press ctrl-alt-del: systemd reboots the guest cleanly (ctrl-alt-del.target)."""
        self.qmp("send-key", keys=[{"type": "qcode", "data": key}
                                   for key in ("ctrl", "alt", "delete")])

    def reset(self) -> None:
        """The reset button: the guest stops at once, as on power loss, and boots again."""
        self.qmp("system_reset")

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def ttys1_lines(self) -> list[str]:
        """Complete lines written to the second serial port so far (CR stripped)."""
        if not self.ttys1.exists():
            return []
        text = self.ttys1.read_text(errors="replace").replace("\r", "")
        return text.split("\n")[:-1]

    def wait_console(self, text: str, timeout: float, after: int = 0) -> float:
        """Wait until ``text`` is on the console past offset ``after``; the time it was seen."""
        return self._wait(lambda: text in self.console_text()[after:], f"{text!r} on the console",
                          timeout)

    def wait_ttys1(self, predicate, what: str, timeout: float) -> float:
        """Wait until ``predicate(lines of ttyS1)`` holds; the time it did."""
        return self._wait(lambda: predicate(self.ttys1_lines()), what, timeout)

    def _wait(self, condition, what: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process is None or self.process.poll() is not None:
                raise VMError(f"qemu stopped while waiting for {what}")
            status = self.qmp("query-status")["status"]
            if status in ("internal-error", "guest-panicked", "shutdown"):
                raise VMError(f"guest {status} while waiting for {what}")
            if time.monotonic() > deadline:
                tail = self.console_text()[-3000:]
                raise VMError(f"no {what} within {timeout:.0f} s; console ends:\n{tail}")
            time.sleep(0.1)
        return time.monotonic()

    def stop(self) -> None:
        """Quit qemu (the guest is not shut down: its disk overlay is thrown away anyway)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.qmp("quit")
        except (OSError, VMError):
            self.process.kill()  # QMP is gone; nothing else can end it
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
