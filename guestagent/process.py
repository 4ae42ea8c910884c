"""The one place that starts child processes.

Every child runs in its own process group with a timeout after which the
whole group is killed. Its stdout and stderr go through guestagent.capture
into files capped on disk (the first and last MiB kept, the cut said), so
memory and disk stay bounded whatever it prints, and a grandchild left
running in the background cannot hang the agent by holding its output open.
Secrets travel in the environment or on stdin, never on argv.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from guestagent import capture
from guestagent.errors import HookFailed

# How long a group gets between SIGTERM and SIGKILL.
KILL_GRACE = 5.0
# Default cap on what is read back from a capture file into memory: a whole capped capture
# (head, marker, tail), so the text is cut at most once, when it is captured.
READ_LIMIT = capture.HEAD + capture.TAIL + 4096

_running: set[int] = set()
_running_lock = threading.Lock()
_stopping = False  # terminate_all was called: the agent is going away


@dataclass
class ProcessResult:
    """How a child ended and where its output is."""

    argv: list[str]
    returncode: int
    timed_out: bool
    stdout_path: Path
    stderr_path: Path
    duration: float
    # Per stream ("stdout", "stderr"): why its file could not be kept (disk full), and the
    # first and last few KiB printed, held in memory instead.
    capture_errors: dict[str, str] = field(default_factory=dict)
    # Bytes each stream printed in all (its file may keep less: see guestagent.capture).
    printed: dict[str, int] = field(default_factory=dict)
    _in_memory: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def status_code(self) -> int:
        """Exit code, or 128+signal when killed (shell convention), 124 on timeout."""
        if self.timed_out:
            return 124
        if self.returncode < 0:
            return 128 - self.returncode
        return self.returncode

    def stdout(self, limit: int = READ_LIMIT) -> str:
        if "stdout" in self._in_memory:
            return self._in_memory["stdout"]
        return read_capped(self.stdout_path, limit)

    def stderr(self, limit: int = READ_LIMIT) -> str:
        if "stderr" in self._in_memory:
            return self._in_memory["stderr"]
        return read_capped(self.stderr_path, limit)


def read_capped(path: Path, limit: int = READ_LIMIT) -> str:
    """Read a text file, keeping its head and tail when it is longer than `limit` bytes."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            if size <= limit:
                return fh.read().decode("utf-8", "replace")
            half = limit // 2
            head = fh.read(half)
            fh.seek(size - half)
            tail = fh.read()
    except FileNotFoundError:
        return ""
    cut = size - len(head) - len(tail)
    return (head.decode("utf-8", "replace")
            + f"\n[... guestagent cut {cut} bytes; full text in {path} ...]\n"
            + tail.decode("utf-8", "replace"))


def env_value(value: Any) -> str:
    """How an input value reaches a child's environment: text as is, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)


def child_env(base: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None
              ) -> dict[str, str]:
    """The environment for a child: `base` (default: ours) plus `extra` rendered by env_value."""
    env = dict(os.environ if base is None else base)
    for name, value in (extra or {}).items():
        env[name] = env_value(value)
    return env


def run(argv: Sequence[str], *, stdout_path: Path, stderr_path: Path,
        stdin: bytes | None = None, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, timeout: float = 3600.0,
        stdout_keep: tuple[int, int] = (capture.HEAD, capture.TAIL),
        on_spawn: Callable[[int], None] | None = None) -> ProcessResult:
    """Run `argv` to completion or timeout; output goes to the two paths (0600, truncated),
    each capped on disk (guestagent.capture); `stdout_keep` is how many bytes of its head and
    tail stdout keeps (a reply read whole, as JSON, keeps a long head and no tail).
    `on_spawn(pid)` is called once the child (the leader of its own group) exists."""
    argv = [str(a) for a in argv]
    start = time.monotonic()
    wake_r, wake_w = os.pipe()  # written once the child has exited: the captures finish
    streams: list[capture.Capture] = []
    try:
        streams.append(capture.Capture(Path(stdout_path), wake_r, *stdout_keep))
        streams.append(capture.Capture(Path(stderr_path), wake_r))
        proc = _popen(argv, stdin, streams, env, cwd)
    except BaseException:
        for stream in streams:
            os.close(stream.file_fd)
            os.close(stream.read_fd)
            if stream.write_fd >= 0:
                os.close(stream.write_fd)
        os.close(wake_r)
        os.close(wake_w)
        raise
    for stream in streams:
        stream.start()
    with _running_lock:
        _running.add(proc.pid)
        stopping = _stopping
    timed_out = False
    try:
        # Started as the agent was told to stop, after terminate_all looked: not waited for,
        # stopped below like an interrupted one.
        if not stopping:
            if on_spawn is not None:
                on_spawn(proc.pid)
            if stdin is not None:
                _feed(proc, stdin)
            try:
                _wait(proc, timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
    finally:
        with _running_lock:
            _running.discard(proc.pid)
        if proc.returncode is None:  # interrupted (KeyboardInterrupt, agent stopping)
            _kill_group(proc)
        os.write(wake_w, b"x")
        for stream in streams:
            stream.finish()
        os.close(wake_r)
        os.close(wake_w)
    names = ("stdout", "stderr")
    return ProcessResult(argv, proc.returncode, timed_out, Path(stdout_path),
                         Path(stderr_path), time.monotonic() - start,
                         capture_errors={n: s.error for n, s in zip(names, streams) if s.error},
                         printed={n: s.total for n, s in zip(names, streams)},
                         _in_memory={n: s.memory_text() for n, s in zip(names, streams)
                                     if s.error})


def _popen(argv: list[str], stdin: bytes | None, streams: list[capture.Capture],
           env: Mapping[str, str] | None, cwd: Path | None) -> subprocess.Popen:
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=streams[0].write_fd, stderr=streams[1].write_fd,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None, start_new_session=True, close_fds=True)
    except OSError as exc:
        if exc.errno == errno.E2BIG:  # one environment value over 128 KiB, or all over the limit
            sizes = sorted(((len(k) + len(v), k) for k, v in (env or {}).items()), reverse=True)
            biggest = ", ".join(f"{k} ({n} bytes)" for n, k in sizes[:3])
            raise HookFailed(f"cannot start {argv[0]}: its environment is too large for the "
                             f"kernel (largest: {biggest}); Linux allows 131072 bytes per "
                             "variable") from None
        raise


def _wait(proc: subprocess.Popen, timeout: float) -> None:
    """proc.wait(timeout), woken the moment the child exits (a pidfd) instead of polling."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # kernel before 5.3, or not Linux
        proc.wait(timeout=timeout)
        return
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        proc.wait()
    finally:
        os.close(pidfd)


def terminate_all(grace: float = KILL_GRACE) -> None:
    """Stop every running child group: SIGTERM, then SIGKILL after `grace` seconds. The
    process is stopping from now on: a child that starts later is stopped at once (`run`)."""
    global _stopping
    with _running_lock:
        _stopping = True
        pids = list(_running)
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in pids:
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.05)
        _signal_group(pid, signal.SIGKILL)


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    # A writer thread: a child that never reads stdin must not block us past its timeout.
    def write() -> None:
        try:
            proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
    threading.Thread(target=write, daemon=True).start()


def _kill_group(proc: subprocess.Popen) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)  # also reaps grandchildren that ignored TERM
    proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@dataclass(frozen=True)
class GroupMark:
    """Enough to recognise a process group after our own restart: leader pid, its start
    time (clock ticks since boot) and the boot it started in."""

    pgid: int
    started: int | None
    boot_id: str | None


def mark_group(pid: int) -> GroupMark:
    """The GroupMark of the group `pid` leads."""
    return GroupMark(pid, start_time(pid), boot_id())


def stop_leftover_group(mark: GroupMark, grace: float = KILL_GRACE) -> bool:
    """Terminate a group an earlier life of the agent left running (SIGTERM, then SIGKILL
    after `grace` s). Returns True when one was found. A group from another boot, or whose
    pid now leads another process, is not ours and is left alone."""
    if mark.boot_id is None or mark.boot_id != boot_id() or not _group_alive(mark.pgid):
        return False
    leader = start_time(mark.pgid)
    # A live group keeps its id reserved, so with the leader gone the group is still ours.
    if leader is not None and leader != mark.started:
        return False
    _signal_group(mark.pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(mark.pgid):
        time.sleep(0.05)
    _signal_group(mark.pgid, signal.SIGKILL)
    while _group_alive(mark.pgid) and time.monotonic() < deadline + grace:
        time.sleep(0.01)  # SIGKILL is not instant: wait until the group is gone
    return True


def boot_id() -> str | None:
    """This boot's id (a process start time only means something within one boot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields follow the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None
