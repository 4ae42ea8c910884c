"""Set a system up to run guestagent at boot, from the environment guestagent is installed in.

Used by the diskimage element (in the image chroot) and by the boot-config
user-data (on first boot), so both install the same way:

- `/usr/local/bin/guestagent` linked to this environment's entry point;
- `guestagent.service` installed and enabled (the multi-user.target.wants
  link, as `systemctl enable` makes it; works in a chroot);
- each built-in hook's standalone executable linked as
  `/usr/libexec/heat-config/hooks/<group>` where heat-config looked for hooks;
- the shipped refresh phase scripts linked under
  `/usr/libexec/os-refresh-config/<phase>/`;
- a logind drop-in so a reboot waits for a running deployment;
- commands under the old tools' names (`os-collect-config`, `os-apply-config`,
  `os-refresh-config`, `heat-config-notify`) in /usr/local/bin, only where the
  old tool is not installed (guestagent/compat/wrappers.py).

Existing hooks and phase scripts of the same name are left alone.

    python -m guestagent.install [--root DIR] [--inhibit-delay SECONDS] [--start]
                                 [--no-old-names]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from guestagent import process, refresh
from guestagent.state import write_atomic

UNIT_NAME = "guestagent.service"
HOOK_PREFIX = "guestagent-hook-"


def unit_source() -> Path:
    """The packaged unit file (wheel data), or the checkout's for an editable install."""
    for candidate in (Path(sys.prefix) / "share" / "guestagent" / UNIT_NAME,
                      Path(__file__).resolve().parent.parent / "systemd" / UNIT_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{UNIT_NAME} is not installed with guestagent (looked in "
                            f"{sys.prefix}/share/guestagent and the source checkout)")


def _link(target: Path, link: Path, replace: bool) -> bool:
    """Make `link` point at `target`; False when something else is there and must stay."""
    if link.is_symlink() or link.exists():
        if not replace:
            return False
        link.unlink()
    link.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    link.symlink_to(target)
    return True


def install(root: Path = Path("/"), bin_dir: Path | None = None,
            inhibit_delay: int = 900, old_names: bool = True) -> list[str]:
    """Install under `root` for the entry points in `bin_dir`; one line per thing done."""
    root = Path(root)
    bin_dir = Path(bin_dir or Path(sys.executable).parent)
    done = []

    def at(path: str) -> Path:
        return root / path.lstrip("/")

    if _link(bin_dir / "guestagent", at("/usr/local/bin/guestagent"), replace=True):
        done.append(f"linked /usr/local/bin/guestagent -> {bin_dir / 'guestagent'}")

    unit = at(f"/etc/systemd/system/{UNIT_NAME}")
    unit.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(unit, unit_source().read_bytes(), 0o644)
    _link(Path(f"/etc/systemd/system/{UNIT_NAME}"),
          at(f"/etc/systemd/system/multi-user.target.wants/{UNIT_NAME}"), replace=True)
    done.append(f"installed and enabled {UNIT_NAME}")

    for entry in sorted(bin_dir.glob(f"{HOOK_PREFIX}*")):
        group = entry.name[len(HOOK_PREFIX):]
        if _link(entry, at(f"/usr/libexec/heat-config/hooks/{group}"), replace=False):
            done.append(f"linked hook {group}")

    for script in sorted(refresh.SHIPPED.glob("*/*")):
        link = at(f"/usr/libexec/os-refresh-config/{script.parent.name}/{script.name}")
        if _link(script, link, replace=False):
            done.append(f"linked phase script {script.parent.name}/{script.name}")

    if old_names:
        from guestagent.compat import wrappers
        done += wrappers.place(root, str(bin_dir / Path(sys.executable).name))

    dropin = at("/etc/systemd/logind.conf.d/guestagent.conf")
    dropin.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    # guestagent holds a logind delay inhibitor while a deployment runs.
    write_atomic(dropin, f"[Login]\nInhibitDelayMaxSec={int(inhibit_delay)}\n".encode(), 0o644)
    done.append(f"logind waits up to {int(inhibit_delay)} s for a running deployment")
    return done


def start() -> int:
    """Reload systemd and start the unit without waiting for its first pass."""
    if not Path("/run/systemd/system").is_dir():
        # A chroot or a container: the unit starts on the next boot.
        print("guestagent install: systemd is not running here; not started now")
        return 0
    with tempfile.TemporaryDirectory(prefix="guestagent-install-") as tmp:
        for argv in (["systemctl", "daemon-reload"],
                     ["systemctl", "start", "--no-block", UNIT_NAME]):
            result = process.run(argv, stdout_path=Path(tmp) / "out",
                                 stderr_path=Path(tmp) / "err", timeout=120)
            if result.status_code:
                print(f"guestagent install: {' '.join(argv)} failed: {result.stderr().strip()}",
                      file=sys.stderr)
                return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m guestagent.install",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/"),
                        help="install under this directory (an image tree); default /")
    parser.add_argument("--inhibit-delay", type=int, default=900,
                        help="logind InhibitDelayMaxSec (seconds a reboot waits)")
    parser.add_argument("--start", action="store_true",
                        help="start the service now (a running system, not an image)")
    parser.add_argument("--no-old-names", action="store_true",
                        help="do not place os-collect-config & co. where they are missing")
    args = parser.parse_args(argv)
    for line in install(args.root, inhibit_delay=args.inhibit_delay,
                        old_names=not args.no_old_names):
        print(line)
    if args.start and os.path.realpath(args.root) == "/":
        return start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
