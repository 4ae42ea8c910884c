"""The architecture, checked: one module starts processes, two do HTTP, and only the state
modules write files (the state directory's records, through one atomic-write helper)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "guestagent"

# Modules that start processes: subprocess, os.fork/exec*/spawn*/system/popen, pty.
PROCESS_MODULES = {"process.py"}
# Modules that speak HTTP (and the transports under it).
# netenv: the proxy environment; zaqar_push: the websocket subscription of the zaqar source.
HTTP_MODULES = {"http.py", "keystone.py", "netenv.py", "collectors/zaqar_push.py"}
HTTP_IMPORTS = ("requests", "http.client", "urllib.request", "urllib3", "keystoneauth1",
                "websocket", "aiohttp", "httpx")
# Modules that create or rewrite files themselves; everyone else goes through
# state.write_atomic / write_json. fstrust opens files without following links; process
# and capture write a child's output; console the serial console (a device).
WRITER_MODULES = {"state.py", "process.py", "fstrust.py", "capture.py", "console.py"}
WRITE_CALLS = {"write_text", "write_bytes", "mkstemp", "NamedTemporaryFile", "fdopen"}


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else None
                yield owner, func.attr, node
            elif isinstance(func, ast.Name):
                yield None, func.id, node


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def _writes(owner, name, node) -> bool:
    if name in WRITE_CALLS:
        return True
    if owner == "os" and name == "open":
        # Reading (O_RDONLY alone) or /dev/null is not writing; any other flag may be.
        target, flags = (ast.unparse(a) for a in (node.args + [None, None])[:2] if a is not None)
        return target != "os.devnull" and flags != "os.O_RDONLY"
    if owner is None and name == "open":
        mode = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "mode"), None)
        return isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
    return False


@pytest.mark.parametrize("path", modules(), ids=_rel)
def test_module_keeps_to_its_job(path):
    tree = ast.parse(path.read_text(), str(path))
    rel = _rel(path)
    names = imported(tree)
    if rel not in PROCESS_MODULES:
        assert not {"subprocess", "pty"} & names, f"{rel} starts processes: use process.run"
        for owner, name, _ in calls(tree):
            assert not (owner == "os" and (name.startswith(("exec", "spawn", "fork", "posix_spawn"))
                                           or name in ("system", "popen"))), \
                f"{rel} calls os.{name}: use process.run"
    if rel not in HTTP_MODULES:
        bad = {n for n in names if n.startswith(HTTP_IMPORTS)}
        assert not bad, f"{rel} imports {bad}: HTTP goes through guestagent.http"
    if rel not in WRITER_MODULES:
        for owner, name, node in calls(tree):
            assert not _writes(owner, name, node), \
                f"{rel}:{node.lineno} writes a file itself ({name}): use state.write_atomic"


def test_size_limits():
    for path in modules():
        lines = len(path.read_text().splitlines())
        assert lines <= 420, f"{_rel(path)} has {lines} lines"
    assert len((PACKAGE / "agent.py").read_text().splitlines()) <= 250
