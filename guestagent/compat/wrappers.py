"""Commands under the old tools' names, placed only where the old tool is not installed.

Each wrapper is a two-line shell script in /usr/local/bin that runs
`python -m guestagent.compat <old-name> "$@"` with guestagent's interpreter.
A real `os-collect-config` (or the others) anywhere on the standard paths is
never overwritten or shadowed: no wrapper is placed, and a wrapper placed
earlier is removed once a real tool shows up. A wrapper is recognised by its
marker line, so an upgrade rewrites it.
"""

from __future__ import annotations

from pathlib import Path

from guestagent.compat import OLD_NAMES
from guestagent.state import write_atomic

WRAPPER_DIR = "/usr/local/bin"
MARKER = "# guestagent-compat-wrapper"
# Where packages, pip and the old images put the old tools.
SEARCH_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin",
               "/opt/stack/venvs/os-collect-config/bin", "/opt/stack/venvs/os-apply-config/bin",
               "/opt/stack/venvs/os-refresh-config/bin")


def wrapper_text(old_name: str, python: str) -> str:
    """The wrapper script for `old_name`, run by `python`."""
    sub = OLD_NAMES[old_name][0]
    return (f"#!/bin/sh\n{MARKER}: {old_name} is provided by guestagent ({sub}); the old tool "
            f"is not installed\nexec {python} -m guestagent.compat {old_name} \"$@\"\n")


def is_wrapper(path: Path) -> bool:
    """True for a wrapper this module wrote (not a real tool, not something else)."""
    try:
        with open(path, "rb") as fh:
            return MARKER.encode() in fh.read(512)
    except OSError:
        return False


def real_tool(root: Path, name: str) -> Path | None:
    """Where a real (not guestagent's) `name` is installed under `root`, if anywhere."""
    for directory in SEARCH_DIRS:
        path = root / directory.lstrip("/") / name
        if (path.is_file() or path.is_symlink()) and not is_wrapper(path):
            return Path(directory) / name
    return None


def place(root: Path, python: str) -> list[str]:
    """Place, update or remove each old-name wrapper under `root`; one line per thing done."""
    done = []
    for name in OLD_NAMES:
        link = root / WRAPPER_DIR.lstrip("/") / name
        real = real_tool(root, name)
        if real is not None:
            if is_wrapper(link):
                link.unlink()  # the real tool came later: it must not be shadowed
                done.append(f"removed the {name} wrapper: the real one is at {real}")
            else:
                done.append(f"left {name} alone: the real one is at {real}")
            continue
        text = wrapper_text(name, python)
        if link.is_file() and link.read_text(errors="replace") == text:
            continue
        link.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_atomic(link, text.encode(), 0o755)
        done.append(f"placed {WRAPPER_DIR}/{name} (runs guestagent {OLD_NAMES[name][0]})")
    return done
