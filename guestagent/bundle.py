"""`guestagent logs --bundle FILE`: the state directory and the agent's logs in one tarball for
a bug report, with every secret redacted. Beside them (see diagnostics): version.txt (agent,
Python, system), config.json (the effective settings), doctor.txt (`guestagent doctor`) and
journal-summary.txt (`guestagent analyze` and a count per state).

Secrets are found the way they reach the agent: inputs and keys whose names say they are
secret (passwords, signal URLs, tokens, keys) in the deployments and source documents.
Their values are removed where they are stored and scrubbed from every other file (a hook
may have printed one), on top of logs.scrub's patterns. Hook working directories are left
out: they hold deployment configs verbatim.
"""

from __future__ import annotations

import dataclasses
import io
import json
import platform
import re
import shutil
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guestagent import logs, process
from guestagent.state import write_atomic

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"(?i)(password|secret|token|signal_id|signature|access_key|"
                          r"metadata_url|credential|private)")
# Files under the state directory left out: hook scratch space, the lock.
_SKIP_TOP = {"hooks", "lock"}
MAX_FILE = 8 * 1024 * 1024


def build(state_dir: Path, out: Path, extra: Mapping[str, Any] | None = None) -> list[str]:
    """Write the redacted tarball to `out` (0600); return the member names. `extra` adds
    members: text as is, anything else as JSON (both redacted like the state files)."""
    state_dir = Path(state_dir)
    files = [p for p in sorted(state_dir.rglob("*")) if p.is_file() and not p.is_symlink()
             and p.relative_to(state_dir).parts[0] not in _SKIP_TOP]
    for path in files:
        if path.suffix == ".json":
            _collect_secrets(_load(path))
    extra = dict(extra or {})
    for value in extra.values():
        _collect_secrets(value)  # a password in the config file is scrubbed everywhere too
    members: dict[str, bytes] = {}
    for path in files:
        name = "state/" + str(path.relative_to(state_dir))
        members[name] = _redacted_file(path)
    for name, value in extra.items():
        members[name] = (logs.scrub(value) if isinstance(value, str) else json.dumps(
            redact(value), indent=1, sort_keys=True, default=str)).encode()
    members["journal.txt"] = logs.scrub(_journalctl(state_dir)).encode()
    members["README.txt"] = (f"guestagent bug report bundle, made {time.ctime()}.\n"
                             "Secrets were replaced by <redacted>.\n").encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"guestagent-bundle/{name}")
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    write_atomic(out, buf.getvalue())
    return list(members)


def diagnostics(settings: Any, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """version.txt, config.json, doctor.txt and journal-summary.txt for the bundle; `settings`
    are the effective config.Settings (the metadata's os-collect-config key applied)."""
    from guestagent import __version__, analyze, doctor
    from guestagent.errors import StateError

    version = (f"guestagent {__version__}\nPython {sys.version.split()[0]} ({sys.executable})\n"
               f"{platform.platform()}\n")
    checks = doctor.run(settings)
    try:
        items = analyze.timelines(settings.state_dir)
        states = Counter(t.state for t in items)
        summary = (f"{len(items)} deployment(s): "
                   + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + "\n\n"
                   + analyze.table(items) + "\n")
    except StateError as exc:
        summary = f"journal unreadable: {exc}\n"
    return {"version.txt": version, "config.json": dataclasses.asdict(settings),
            "doctor.txt": "\n".join(c.line() for c in checks) + "\n",
            "journal-summary.txt": summary}


def cached_metadata(state_dir: Path) -> dict:
    """The os-collect-config key of the cached source documents, later sources winning: what
    the agent applies on top of the config file."""
    merged: dict = {}
    for path in sorted(Path(state_dir, "sources").glob("*.json")):
        data = _load(path)
        document = data.get("document") if isinstance(data, dict) else None
        occ = document.get("os-collect-config") if isinstance(document, dict) else None
        if isinstance(occ, dict):
            merged.update(occ)
    return {"os-collect-config": merged} if merged else {}


def redact(obj: Any) -> Any:
    """A copy of `obj` without secret values: secret-named keys, and the value of secret-named
    inputs ({"name": "deploy_password", "value": ...})."""
    if isinstance(obj, dict):
        named = obj.get("name")
        secret_input = isinstance(named, str) and _SECRET_NAME.search(named)
        return {k: REDACTED if (_SECRET_NAME.search(str(k)) and v not in (None, "", [], {}))
                or (secret_input and k in ("value", "default")) else redact(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return logs.scrub(obj)
    return obj


def _collect_secrets(obj: Any) -> None:
    # Register every secret value so it is scrubbed wherever else it appears.
    if isinstance(obj, dict):
        named = obj.get("name")
        if isinstance(named, str) and _SECRET_NAME.search(named):
            for key in ("value", "default"):
                _register(obj.get(key))
        for key, value in obj.items():
            if _SECRET_NAME.search(str(key)):
                _register(value)
            _collect_secrets(value)
    elif isinstance(obj, list):
        for value in obj:
            _collect_secrets(value)


def _register(value: Any) -> None:
    if isinstance(value, str):
        logs.register_secret(value)
        if "?" in value:
            logs.register_secret(value.split("?", 1)[1])  # a signed URL's query alone
    elif isinstance(value, (dict, list)):
        logs.register_secret(json.dumps(value))


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes()[:MAX_FILE])
    except (OSError, ValueError):
        return None


def _redacted_file(path: Path) -> bytes:
    if path.suffix == ".json":
        data = _load(path)
        if data is not None:
            return json.dumps(redact(data), indent=1, sort_keys=True).encode()
    text = process.read_capped(path, MAX_FILE)
    return logs.scrub(text).encode()


def _journalctl(state_dir: Path) -> str:
    """The agent's journal (systemd), when there is one."""
    tool = shutil.which("journalctl")
    if tool is None:
        return "journalctl not found: no system journal on this machine\n"
    out, err = state_dir / ".bundle-journal.out", state_dir / ".bundle-journal.err"
    try:
        result = process.run([tool, "--no-pager", "-o", "short-iso", "-n", "20000", "-u",
                              "guestagent.service"], stdout_path=out, stderr_path=err,
                             timeout=60)
        text = result.stdout(MAX_FILE)
        return text if result.returncode == 0 else f"journalctl failed: {result.stderr(4096)}"
    finally:
        for path in (out, err):
            path.unlink(missing_ok=True)
