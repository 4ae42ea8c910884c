"""What every hook takes and returns, and helpers they share."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

from guestagent import process
from guestagent.deployments import Deployment
from guestagent.errors import HookFailed
from guestagent.state import ensure_dir, safe_component, write_atomic

DEFAULT_TIMEOUT = 3600.0


@dataclass
class HookResult:
    """A hook's outcome; `response()` is what is signalled (heat-config's reply object)."""

    status_code: int
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        reply = dict(self.outputs)
        reply.update(deploy_stdout=self.stdout, deploy_stderr=self.stderr,
                     deploy_status_code=self.status_code)
        return reply

    @classmethod
    def failure(cls, message: str, status_code: int = 1, stdout: str = "",
                stderr: str = "") -> "HookResult":
        """A failed result whose stderr ends with `message` (one line for a person)."""
        text = (stderr + ("\n" if stderr and not stderr.endswith("\n") else "")
                + f"guestagent: {message}\n")
        return cls(status_code=status_code, stdout=stdout, stderr=text)


@dataclass
class HookContext:
    """Where a hook works and what it may use; built by the agent or by a standalone hook."""

    work_dir: Path          # the hook's working directory (config files, scripts)
    outputs_dir: Path       # where `heat_outputs_path` points
    capture_dir: Path       # where the child's stdout/stderr files go
    timeout: float = DEFAULT_TIMEOUT
    env: Mapping[str, str] | None = None   # base environment for children (None: ours)
    hooks_dirs: tuple[Path, ...] = ()      # where external hooks are looked for

    def timeout_for(self, dep: Deployment) -> float:
        return dep.timeout or self.timeout

    def outputs_path(self, dep: Deployment) -> Path:
        return ensure_dir(self.outputs_dir) / safe_component(dep.id)

    def run(self, dep: Deployment, argv: list, *, stdin: bytes | None = None,
            env_extra: Mapping[str, Any] | None = None, cwd: Path | None = None
            ) -> process.ProcessResult:
        """Start a tool for `dep` through the shared runner (timeout, group kill, capture)."""
        ensure_dir(self.capture_dir)
        return process.run(argv, stdin=stdin, env=process.child_env(self.env, env_extra),
                           cwd=cwd or ensure_dir(self.work_dir), timeout=self.timeout_for(dep),
                           stdout_path=self.capture_dir / "stdout",
                           stderr_path=self.capture_dir / "stderr")


class Hook(Protocol):
    """A hook runs one deployment; `cleanup` (optional) undoes it when it disappears."""

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult: ...


def require_tool(name: str, install_hint: str) -> str:
    """Full path of an executable tool, or HookFailed saying how to get it."""
    path = shutil.which(name)
    if not path:
        raise HookFailed(f"{name} is not installed or not on PATH ({install_hint})")
    return path


def clear_outputs(dep: Deployment, ctx: HookContext) -> Path:
    """Remove output files a previous run left, so a re-run cannot report stale values."""
    base = ctx.outputs_path(dep)
    for out in dep.outputs:
        try:
            os.unlink(f"{base}.{out['name']}")
        except FileNotFoundError:
            pass
    return base


def read_outputs(dep: Deployment, base: Path) -> dict[str, Any]:
    """Each declared output the tool wrote to `<base>.<name>`, as raw text."""
    values = {}
    for out in dep.outputs:
        path = f"{base}.{out['name']}"
        if os.path.exists(path):
            values[out["name"]] = process.read_capped(Path(path), limit=16 * 1024 * 1024)
    return values


def result_from_process(proc: process.ProcessResult, outputs: Mapping[str, Any],
                        timeout: float) -> HookResult:
    """A HookResult from a finished tool run, with a clear line when it timed out."""
    stderr = proc.stderr()
    if proc.timed_out:
        return HookResult.failure(
            f"{proc.argv[0]} did not finish within {timeout:g} s; its process group was killed",
            status_code=proc.status_code, stdout=proc.stdout(), stderr=stderr)
    return HookResult(status_code=proc.status_code, stdout=proc.stdout(), stderr=stderr,
                      outputs=dict(outputs))


def write_private(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    """Write a hook's working file (rewritten, never appended) with a private mode."""
    ensure_dir(path.parent)
    write_atomic(path, text.encode() if isinstance(text, str) else text, mode)
    return path
