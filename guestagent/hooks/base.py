"""What every hook takes and returns, and helpers they share."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from guestagent import fstrust, process
from guestagent.deployments import Deployment
from guestagent.errors import HookFailed, InvalidDeployment
from guestagent.state import ensure_dir, safe_component, write_atomic

DEFAULT_TIMEOUT = 3600.0
_STREAM_KEYS = ("deploy_stdout", "deploy_stderr", "deploy_status_code")


@dataclass
class HookResult:
    """A hook's outcome; `response()` is what is signalled (heat-config's reply object)."""

    status_code: int
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    # Key order of the reply: heat-config's puppet hook wrote the two streams before outputs.
    streams_first: bool = False
    # An external hook's reply exactly as it printed it, sent on unchanged (see `passthrough`).
    reply: dict[str, Any] | None = field(default=None, repr=False)
    _parsed: tuple | None = field(default=None, repr=False)

    def response(self) -> dict[str, Any]:
        """The reply object; an external hook's own reply when nothing changed it since."""
        if self.reply is not None:
            reply = dict(self.reply)
            # The agent may have changed a field after the hook (unit actions append to
            # stdout): only a changed field is replaced, the rest stays as the hook wrote it.
            for key, now, then in zip(_STREAM_KEYS, self._fields(), self._parsed or ()):
                if now != then:
                    reply[key] = now
            return reply
        streams = {"deploy_stdout": self.stdout, "deploy_stderr": self.stderr}
        reply = dict(streams) if self.streams_first else {}
        reply.update(self.outputs)
        reply.update(streams)
        reply["deploy_status_code"] = self.status_code
        return reply

    def _fields(self) -> tuple:
        return (self.stdout, self.stderr, self.status_code)

    @classmethod
    def passthrough(cls, reply: dict[str, Any], status_code: int, stdout: str, stderr: str,
                    outputs: dict[str, Any]) -> HookResult:
        """A result whose `response()` is `reply` verbatim (a "0" status stays "0") while
        the typed fields (what the journal and logs use) hold the parsed values."""
        result = cls(status_code=status_code, stdout=stdout, stderr=stderr, outputs=outputs,
                     reply=dict(reply))
        result._parsed = result._fields()
        return result

    @classmethod
    def failure(cls, message: str, status_code: int = 1, stdout: str = "",
                stderr: str = "") -> HookResult:
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
    on_spawn: Callable[[int], None] | None = None  # told each child's pid (the journal's)
    # The agent's os-collect-config directory: its index lists the metadata files of the
    # agent running this hook (the apply-config hook renders against them). None: not run
    # by an agent (a standalone hook), or an agent that does not say.
    os_config_dir: Path | None = None

    def timeout_for(self, dep: Deployment) -> float:
        return dep.timeout or self.timeout

    def environ(self) -> Mapping[str, str]:
        """The environment hooks read their overrides from (HEAT_<TOOL>_CMD and the like)."""
        return os.environ if self.env is None else self.env

    def outputs_path(self, dep: Deployment) -> Path:
        return ensure_dir(self.outputs_dir) / safe_component(dep.id)

    def run(self, dep: Deployment, argv: list, *, stdin: bytes | None = None,
            env_extra: Mapping[str, Any] | None = None, cwd: Path | None = None,
            stdout_keep: tuple[int, int] | None = None) -> process.ProcessResult:
        """Start a tool for `dep` through the shared runner (timeout, group kill, capture);
        `stdout_keep`: see process.run."""
        ensure_dir(self.capture_dir)
        extra = {} if stdout_keep is None else {"stdout_keep": stdout_keep}
        return process.run(argv, stdin=stdin, env=process.child_env(self.env, env_extra),
                           cwd=cwd or ensure_dir(self.work_dir), timeout=self.timeout_for(dep),
                           stdout_path=self.capture_dir / "stdout",
                           stderr_path=self.capture_dir / "stderr", on_spawn=self.on_spawn, **extra)


class Hook:
    """A hook runs one deployment; `cleanup` undoes it when it leaves the metadata."""

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        """Run `dep`; a failure is a HookResult with a non-zero status, not an exception."""
        raise NotImplementedError

    def cleanup(self, dep: Deployment, ctx: HookContext) -> HookResult | None:
        """Undo `dep` (most hooks leave what they did in place)."""
        return None


def require_tool(name: str, install_hint: str, search_path: str | None = None) -> str:
    """Full path of an executable tool, or HookFailed saying how to get it.

    Looked for on `search_path` (default: our PATH), then beside our own
    interpreter (a virtualenv's bin/, where pip puts tools such as
    ansible-playbook installed with guestagent).
    """
    path = (shutil.which(name, path=search_path)
            or shutil.which(name, path=os.path.dirname(sys.executable)))
    if not path:
        raise HookFailed(f"{name} is not installed or not on PATH ({install_hint})")
    return path


def tool_command(ctx: HookContext, variable: str, name: str, install_hint: str) -> list[str]:
    """The tool's argv prefix: the operator's `variable` (shell-split) if set, else `name`."""
    override = ctx.environ().get(variable, "").strip()
    argv = shlex.split(override) if override else [name]
    argv[0] = require_tool(argv[0], install_hint if not override
                           else f"{variable}={override!r} names it",
                           search_path=ctx.environ().get("PATH"))
    return argv


def option_flag(dep: Deployment, name: str, default: bool) -> bool:
    """A boolean option; Heat templates also send "true"/"false" strings."""
    value = dep.options.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise InvalidDeployment(dep.label, f"options.{name}", f"must be a boolean, not {value!r}")


def option_text(dep: Deployment, name: str) -> str | None:
    """A string option (a list is joined with commas, as tag options are); None when unset."""
    value = dep.options.get(name)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, str):
        return value
    raise InvalidDeployment(dep.label, f"options.{name}", f"must be a string, not {value!r}")


def clear_outputs(dep: Deployment, ctx: HookContext) -> Path:
    """Remove output files a previous run left, so a re-run cannot report stale values."""
    base = ctx.outputs_path(dep)
    for out in dep.outputs:
        path = f"{base}.{out['name']}"
        try:
            os.unlink(path)  # a symbolic link itself, never its target
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(path)  # left by a tool in our outputs directory; rmtree never follows links
        except OSError as exc:
            raise HookFailed(f"output {out['name']!r}: cannot remove the old {path}: "
                             f"{exc.strerror}") from exc
    return base


# An output larger than this could never be signalled (Heat's max_json_body_size).
MAX_OUTPUT = 1024 * 1024


class OutputValues(dict):
    """Output values by name, and `problems`: one line per declared output that could not be
    read (not a regular file, too large, unreadable); any problem fails the deployment."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []


def read_outputs(dep: Deployment, base: Path, limit: int = MAX_OUTPUT) -> OutputValues:
    """Each declared output the tool wrote to `<base>.<name>`, as raw text.

    Only a regular file is read: it is opened without following a symbolic link and without
    blocking (a FIFO), and read up to `limit` bytes; anything else is a problem naming the
    output, never a hang or an unbounded read.
    """
    values = OutputValues()
    for out in dep.outputs:
        name = out["name"]
        path = f"{base}.{name}"
        try:
            data, size = fstrust.read_regular(path, limit + 1)
        except FileNotFoundError:
            continue  # not written: Heat sees no value
        except fstrust.NotRegular as exc:
            values.problems.append(f"output {name!r}: {path} {exc.strerror}, not a regular file; "
                                   "not read")
            continue
        except OSError as exc:
            values.problems.append(f"output {name!r}: cannot read {path}: {exc.strerror}")
            continue
        if size > limit:
            values.problems.append(f"output {name!r}: {path} is {size} bytes; at most {limit} "
                                   "can be signalled")
            continue
        values[name] = data.decode("utf-8", "replace")
    return values


def result_from_process(proc: process.ProcessResult, outputs: Mapping[str, Any],
                        timeout: float) -> HookResult:
    """A HookResult from a finished tool run; a failure with a clear line when it timed out,
    its output could not be captured (full disk), or an output could not be read."""
    stderr = proc.stderr()
    if proc.timed_out:
        return HookResult.failure(
            f"{proc.argv[0]} did not finish within {timeout:g} s; its process group was killed",
            status_code=proc.status_code, stdout=proc.stdout(), stderr=stderr)
    problems = [f"{stream} not kept: {why}" for stream, why in proc.capture_errors.items()]
    problems += getattr(outputs, "problems", [])
    if problems:
        return HookResult.failure("; ".join(problems), status_code=proc.status_code or 1,
                                  stdout=proc.stdout(), stderr=stderr)
    return HookResult(status_code=proc.status_code, stdout=proc.stdout(), stderr=stderr,
                      outputs=dict(outputs))


def write_private(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    """Write a hook's working file (rewritten, never appended) with a private mode."""
    ensure_dir(path.parent)
    # Scratch: rewritten before every run, so a crash may lose it (no fsync, still atomic).
    write_atomic(path, text.encode() if isinstance(text, str) else text, mode, fsync=False)
    return path


def write_destination(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    """Write a file where a deployment puts it (an operator's directory, e.g. /etc/...).

    Missing parent directories are created 0700; existing ones keep their mode
    (tightening /etc or a hiera datadir would break other readers).
    """
    try:
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise HookFailed(f"cannot create directory {path.parent}: {exc.strerror}") from exc
    write_atomic(path, text.encode() if isinstance(text, str) else text, mode)
    return path
