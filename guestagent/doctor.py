"""`guestagent doctor`: check what the agent depends on, one line per check.

Each configured source is fetched once (reachable, credentials accepted, TLS verified: the
source's own error says which failed); the tools of the hooks are looked for; the state
directory's ownership and modes are checked and a write is tried; the clock is compared with
the metadata server's and with the journal.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from guestagent import config
from guestagent.errors import GuestAgentError, SourceNotConfigured, StateError, TransportError

OK, WARN, FAIL = "ok", "warn", "fail"
# Executables each built-in hook runs (the script hook runs the deployment itself).
HOOK_TOOLS = {"puppet": "puppet", "ansible": "ansible-playbook", "docker-cmd": "docker",
              "docker-compose": "docker"}
# A clock this far from the metadata server's breaks signed requests (heat-api-cfn allows 15 min).
SKEW_WARN, SKEW_FAIL = 60.0, 900.0
EARLIEST = 1704067200  # 2024-01-01: a clock before this was never set


@dataclass
class Check:
    """One line of the report."""

    check: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status.upper():4}  {self.check}: {self.detail}"


def run(settings: config.Settings) -> list[Check]:
    """Every check, in report order."""
    checks = [check_state_dir(settings.state_dir)]
    used = _groups_in_use(settings.state_dir)
    for name in settings.collectors:
        checks.append(check_source(settings, name))
    for group, tool in HOOK_TOOLS.items():
        checks.append(check_tool(group, tool, group in used))
    checks.append(check_clock(settings))
    return checks


def check_source(settings: config.Settings, name: str) -> Check:
    from guestagent import collectors

    label = f"source {name}"
    try:
        document = collectors.build(name, settings.source_options(name)).collect(None)
    except SourceNotConfigured as exc:
        return Check(label, WARN, f"not configured here ({exc})")
    except GuestAgentError as exc:
        return Check(label, FAIL, str(exc))
    count = len(document.document.get("deployments") or []) \
        if isinstance(document.document.get("deployments"), list) else 0
    return Check(label, OK, f"reachable, {count} deployment(s) in its metadata")


def check_tool(group: str, tool: str, used: bool) -> Check:
    path = shutil.which(tool)
    if path:
        return Check(f"hook {group}", OK, f"{tool} at {path}")
    why = "a known deployment uses this group" if used else "no known deployment uses it"
    return Check(f"hook {group}", FAIL if used else WARN, f"{tool} not found on PATH ({why})")


def check_state_dir(root: Path) -> Check:
    from guestagent.state import write_atomic

    label = f"state dir {root}"
    try:
        info = root.stat()
    except FileNotFoundError:
        return Check(label, WARN, "does not exist yet (the agent creates it on start)")
    problems = []
    if info.st_uid != os.geteuid():
        problems.append(f"owned by uid {info.st_uid}, not {os.geteuid()}")
    if stat.S_IMODE(info.st_mode) & 0o077:
        problems.append(f"mode {stat.S_IMODE(info.st_mode):04o}, should be 0700")
    loose = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
             and stat.S_IMODE(p.lstat().st_mode) & 0o077 and "hooks" not in p.relative_to(root).parts]
    if loose:
        problems.append(f"{len(loose)} file(s) readable by others, e.g. {loose[0]}")
    probe = root / ".doctor-probe"
    try:
        write_atomic(probe, b"probe")
        probe.unlink()
    except (StateError, OSError) as exc:
        problems.append(f"not writable: {exc}")
    return Check(label, FAIL if problems else OK, "; ".join(problems) or "0700, ours, writable")


def check_clock(settings: config.Settings) -> Check:
    now = time.time()
    if now < EARLIEST:
        return Check("clock", FAIL, f"{time.ctime(now)} is before 2024: the clock was never set")
    future = [e for e in _entries(settings.state_dir) if e.received_at > now + SKEW_WARN]
    if future:
        return Check("clock", WARN, f"{len(future)} journal entries are from the future: the "
                                    "clock went backwards")
    url = settings.source_options("request").get("metadata_url")
    if "request" not in settings.collectors or not url:
        return Check("clock", OK, f"{time.ctime(now)} (no HTTP source to compare with)")
    from guestagent import http

    try:
        date = http.request("GET", url, timeout=(5.0, 5.0)).headers.get("Date")
        skew = now - parsedate_to_datetime(date).timestamp()
    except (TransportError, TypeError, ValueError) as exc:  # no reply or no Date
        return Check("clock", WARN, f"could not compare with the metadata server: "
                                    f"{type(exc).__name__}")
    status = FAIL if abs(skew) > SKEW_FAIL else WARN if abs(skew) > SKEW_WARN else OK
    return Check("clock", status, f"{skew:+.0f} s from the metadata server")


def _entries(root: Path):
    from guestagent.journal import Journal
    from guestagent.state import StateDir

    try:
        return list(Journal(StateDir(root))) if root.is_dir() else []
    except StateError:
        return []


def _groups_in_use(root: Path) -> set[str]:
    return {e.group for e in _entries(root)}


def as_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
