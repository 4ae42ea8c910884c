"""health.json: the agent's account of its last completed pass, read by `status` and `doctor`.

The agent writes it (atomically) after the first pass of every start and whenever the set of
failing sources changes, so its presence for this boot means "the first pass is done":

    {"schema": 1, "first_pass_done": true, "sources_failing": {"<source>": "<error>"},
     "pid": 1234, "boot_id": "<kernel boot id>", "written_at": 1700000000.0}

A file from an earlier boot (another boot_id) does not count: after a reboot the state
directory persists, but the agent of this boot has not finished a pass yet.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from guestagent.state import HEALTH_FILE, read_json, write_json

SCHEMA = 1


def boot_id() -> str | None:
    """This boot's id (Linux), None where the kernel does not say."""
    from guestagent.process import boot_id as kernel_boot_id

    return kernel_boot_id() or None


def write(root: Path, sources_failing: dict[str, str], loop_error: str | None = None) -> None:
    """Record a completed pass: the marker that the first pass of this start is done."""
    write_json(Path(root) / HEALTH_FILE, {
        "schema": SCHEMA, "first_pass_done": True, "sources_failing": dict(sources_failing),
        "loop_error": loop_error, "pid": os.getpid(), "boot_id": boot_id(),
        "written_at": time.time()})


@dataclass
class Health:
    """What health.json says, judged for this boot."""

    first_pass_done: bool
    why_not: str = ""                 # when not done: why (no file yet, an earlier boot's)
    sources_failing: dict[str, str] = field(default_factory=dict)
    written_at: float | None = None


def read(root: Path) -> Health:
    """health.json under `root`; a missing directory or file means no pass completed yet."""
    root = Path(root)
    if not root.is_dir():
        return Health(False, f"no state directory at {root} yet")
    data = read_json(root / HEALTH_FILE)
    if not isinstance(data, dict):
        return Health(False, "the agent has not completed its first pass yet")
    failing = {str(k): str(v) for k, v in (data.get("sources_failing") or {}).items()}
    if data.get("loop_error"):
        failing["(agent loop)"] = f"the last pass failed unexpectedly: {data['loop_error']}"
    written, now = data.get("boot_id"), boot_id()
    if written and now and written != now:
        return Health(False, "the agent has not completed its first pass since this boot",
                      failing, data.get("written_at"))
    # A file without the flag is an older agent's: it too was written only after a pass.
    return Health(bool(data.get("first_pass_done", True)), "", failing, data.get("written_at"))


def wait_first_pass(root: Path, timeout: float, *, interval: float = 0.25,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> Health:
    """Re-read health.json until the first pass of this boot is done or `timeout` passes
    (the state directory need not exist yet: systemd or the agent creates it)."""
    deadline = clock() + timeout
    while True:
        health = read(root)
        if health.first_pass_done or clock() >= deadline:
            return health
        sleep(min(interval, max(0.0, deadline - clock())))
