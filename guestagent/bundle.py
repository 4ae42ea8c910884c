"""`guestagent logs --bundle FILE`: the state directory and the agent's logs in one tarball for
a bug report, with every secret redacted.

Secrets are found the way they reach the agent: inputs and keys whose names say they are
secret (passwords, signal URLs, tokens, keys) in the deployments and source documents.
Their values are removed where they are stored and scrubbed from every other file (a hook
may have printed one), on top of logs.scrub's patterns. Hook working directories are left
out: they hold deployment configs verbatim.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import time
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


def build(state_dir: Path, out: Path) -> list[str]:
    """Write the redacted tarball to `out` (0600); return the member names."""
    state_dir = Path(state_dir)
    files = [p for p in sorted(state_dir.rglob("*")) if p.is_file() and not p.is_symlink()
             and p.relative_to(state_dir).parts[0] not in _SKIP_TOP]
    for path in files:
        if path.suffix == ".json":
            _collect_secrets(_load(path))
    members: dict[str, bytes] = {}
    for path in files:
        name = "state/" + str(path.relative_to(state_dir))
        members[name] = _redacted_file(path)
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
