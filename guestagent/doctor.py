"""`guestagent doctor`: check what the agent depends on, one line per check.

Each configured source is fetched once (reachable, credentials accepted, TLS verified: the
source's own error says which failed) and a file source's missing directory or file is
called missing; the hooks' tools are looked for where the hooks look (HEAT_<TOOL>_CMD, PATH,
then beside the agent's own interpreter, where `pip install 'guestagent[ansible]'` puts
ansible-playbook); docker-cmd's needs are checked (the Docker SDK imports, the engine answers
on its socket); the state directory's ownership and modes are checked and a write is tried;
the clock is compared with the `Date` of the first HTTP source that answers, and with the
journal.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from guestagent import config
from guestagent.errors import (
    GuestAgentError,
    SourceNotConfigured,
    StateError,
    TransportError,
)

OK, WARN, FAIL = "ok", "warn", "fail"
# Executables the built-in hooks run, with the variable that overrides each (the script hook
# runs the deployment itself; docker-cmd talks to the engine through the SDK: check_docker).
HOOK_TOOLS = {"puppet": ("HEAT_PUPPET_CMD", "puppet"),
              "ansible": ("HEAT_ANSIBLE_CMD", "ansible-playbook")}
COMPOSE_TOOLS = ("docker-compose", "podman-compose")
DOCKER_SOCKET = "/var/run/docker.sock"
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
    for group, (variable, tool) in HOOK_TOOLS.items():
        checks.append(check_tool(group, variable, tool, group in used))
    checks.append(check_compose("docker-compose" in used))
    checks.append(check_docker("docker-cmd" in used))
    checks.append(check_clock(settings))
    return checks


def check_source(settings: config.Settings, name: str) -> Check:
    from guestagent import collectors

    label = f"source {name}"
    missing = _missing_paths(name, settings.source_options(name))
    if missing:
        return Check(label, WARN, "; ".join(missing))
    try:
        document = collectors.build(name, settings.source_options(name)).collect(None)
    except SourceNotConfigured as exc:
        return Check(label, WARN, f"not configured here ({exc})")
    except GuestAgentError as exc:
        return Check(label, FAIL, str(exc))
    count = len(document.document.get("deployments") or []) \
        if isinstance(document.document.get("deployments"), list) else 0
    return Check(label, OK, f"reachable, {count} deployment(s) in its metadata")


def _missing_paths(name: str, options: dict) -> list[str]:
    """What a file source reads that is not there, said plainly."""
    from guestagent.collectors import heat_local, jsonfiles, local

    default = {"local": local.DEFAULT_PATH, "heat_local": heat_local.DEFAULT_PATH}.get(name)
    if default is None:
        return []
    kind = "directory" if name == "local" else "file"
    return [f"{kind} {p} is missing" for p in jsonfiles.path_option(options, default)
            if not p.exists()]


def _why(used: bool) -> str:
    return "a known deployment uses this group" if used else "no known deployment uses it"


def check_tool(group: str, variable: str, tool: str, used: bool) -> Check:
    """The hook's tool found the way the hook finds it (hooks.base.tool_command)."""
    from guestagent.hooks.base import HookFailed, require_tool

    override = os.environ.get(variable, "").strip()
    name = shlex.split(override)[0] if override else tool
    try:
        path = require_tool(name, "", search_path=os.environ.get("PATH"))
    except HookFailed:
        where = f"{variable}={override!r} names it" if override else \
            f"not on PATH nor in {os.path.dirname(sys.executable)}"
        return Check(f"hook {group}", FAIL if used else WARN, f"{name} not found: {where} "
                                                             f"({_why(used)})")
    return Check(f"hook {group}", OK, f"{name} at {path}")


def check_compose(used: bool) -> Check:
    """docker-compose's tools: the `docker compose` plugin, docker-compose or podman-compose."""
    label = "hook docker-compose"
    override = os.environ.get("HEAT_DOCKER_COMPOSE_CMD", "").strip()
    if override:
        return check_tool("docker-compose", "HEAT_DOCKER_COMPOSE_CMD", override, used)
    docker = shutil.which("docker")
    if docker and _succeeds([docker, "compose", "version"]):
        return Check(label, OK, f"{docker} compose (plugin)")
    for tool in COMPOSE_TOOLS:
        path = shutil.which(tool)
        if path:
            return Check(label, OK, f"{tool} at {path}")
    return Check(label, FAIL if used else WARN, "no `docker compose` plugin, docker-compose "
                                                f"or podman-compose on PATH ({_why(used)})")


def _succeeds(argv: list[str]) -> bool:
    from guestagent import process

    with tempfile.TemporaryDirectory(prefix="guestagent-doctor-") as tmp:
        try:
            done = process.run(argv, stdout_path=Path(tmp, "out"), stderr_path=Path(tmp, "err"),
                               timeout=20)
        except OSError:
            return False
        return done.returncode == 0


def check_docker(used: bool) -> Check:
    """docker-cmd's needs: the Docker SDK for Python imports, the engine answers a ping."""
    label = "hook docker-cmd"
    bad = FAIL if used else WARN
    try:
        import docker
        import docker.errors
    except ImportError:
        return Check(label, bad, "the Docker SDK for Python is not installed (`pip install "
                                 f"'guestagent[docker]'` or python3-docker) ({_why(used)})")
    host = os.environ.get("DOCKER_HOST") or f"unix://{DOCKER_SOCKET}"
    if host.startswith("unix://") and not os.path.exists(host[len("unix://"):]):
        return Check(label, bad, f"SDK {docker.__version__}; no engine socket at "
                                 f"{host[len('unix://'):]} (is dockerd running?) ({_why(used)})")
    try:
        client = docker.from_env(timeout=10)
        version = client.version().get("Version", "?")
        client.close()
    except docker.errors.DockerException as exc:
        return Check(label, bad, f"SDK {docker.__version__}; the engine at {host} does not "
                                 f"answer: {exc} ({_why(used)})")
    return Check(label, OK, f"SDK {docker.__version__}, engine {version} at {host}")


def check_state_dir(root: Path) -> Check:
    from guestagent.state import write_atomic

    label = f"state dir {root}"
    try:
        info = root.stat()
    except FileNotFoundError:
        return Check(label, WARN, "missing (the agent creates it on start)")
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
    urls = _http_urls(settings)
    if not urls:
        return Check("clock", OK, f"{time.ctime(now)} (no HTTP source to compare with)")
    from guestagent import http

    why = ""
    for source, url in urls:
        try:
            date = http.request("GET", url, timeout=(5.0, 5.0), max_body=65536).headers.get("Date")
            skew = time.time() - parsedate_to_datetime(date).timestamp()
        except (TransportError, TypeError, ValueError) as exc:  # no reply, or no usable Date
            why = f"{source}: {type(exc).__name__}"
            continue
        status = FAIL if abs(skew) > SKEW_FAIL else WARN if abs(skew) > SKEW_WARN else OK
        return Check("clock", status, f"{skew:+.0f} s from the Date of {source} ({url})")
    return Check("clock", WARN, f"could not compare with any HTTP source ({why})")


def _http_urls(settings: config.Settings) -> list[tuple[str, str]]:
    """(source, URL) for each configured source that speaks HTTP, in configured order."""
    from guestagent.collectors import ec2

    urls = []
    for name in settings.collectors:
        options = settings.source_options(name)
        url = options.get("metadata_url") or options.get("auth_url") \
            or (ec2.DEFAULT_URL if name == "ec2" else None)
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            urls.append((name, url.split("?", 1)[0]))  # a signed query is not needed for Date
    return urls


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
