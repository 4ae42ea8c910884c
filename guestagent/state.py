"""Everything guestagent keeps on disk, and the one way it writes a file.

Layout under the state directory (0700, files 0600):

    sources/<name>.json            last good document of each source, with its validators
    deployments/<key>/journal.json the deployment's journal entry (state machine, see DESIGN.md)
    deployments/<key>/deployment.json  the deployment as received (holds signal credentials)
    deployments/<key>/response.json    the full hook response (untrimmed)
    deployments/<key>/stdout, stderr   what the hook printed, in full
    hooks/<group>/...              hook working and outputs directories
    lock                           held by the running agent
    health.json                    first pass done, sources unreachable (guestagent.health)
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from guestagent import crashpoint
from guestagent.errors import StateError

DIR_MODE = 0o700
FILE_MODE = 0o600

# Journal states, in the order a deployment moves through them.
RECEIVED = "received"
RUNNING = "running"
FINISHED = "finished"
SIGNALLED = "signalled"
GONE = "gone"
DONE_STATES = frozenset({FINISHED, SIGNALLED, GONE})
# Which sources the agent could not reach on its last pass (read by `guestagent status`).
HEALTH_FILE = "health.json"

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def safe_component(name: str) -> str:
    """Map any string (a deployment id, a name) to one safe path component.

    Ordinary ids (UUIDs) are kept as they are so an operator can find them;
    anything else (slashes, dots, control characters, overlong) becomes a
    readable prefix plus a hash, so it can never leave its directory.
    """
    if _SAFE_KEY.match(name) and ".." not in name:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    prefix = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:40].strip("_") or "x"
    return f"{prefix}-{digest}"


def ensure_dir(path: Path, mode: int = DIR_MODE) -> Path:
    """Create `path` and any missing parents with `mode`; tighten `path` if it exists looser."""
    path = Path(path)
    try:
        missing = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=mode)
            except FileExistsError:
                pass  # created meanwhile by another process
            os.chmod(directory, mode)  # mkdir's mode is filtered by the umask
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except OSError as exc:
        raise StateError(f"cannot create directory {path}: {exc.strerror}") from exc
    return path


def write_atomic(path: Path, data: bytes, mode: int = FILE_MODE, *, fsync: bool = True,
                 fsync_dir: bool = True) -> None:
    """Write `data` to `path` atomically: temp file, fsync, rename, fsync dir.

    A reader (or a crash) sees the old content or the new, never a mix. `fsync_dir=False`
    when a write that follows in the same directory syncs it anyway; `fsync=False` (no
    syncing at all) for scratch files that are rewritten whenever they are needed.
    """
    path = Path(path)
    fd = -1
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        tmp = ""
        if fsync and fsync_dir:
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        why = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
        raise StateError(f"cannot write {path}: {why}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_json(path: Path, obj: Any, mode: int = FILE_MODE, *, fsync_dir: bool = True) -> None:
    """Write `obj` as JSON through write_atomic."""
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True).encode(), mode,
                 fsync_dir=fsync_dir)


def read_json(path: Path) -> Any:
    """Read a JSON file; None when it does not exist, StateError when it is corrupt."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc


@dataclass
class SourceCache:
    """The last good document of one source, with what makes the next request conditional."""

    document: dict
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: float = 0.0


@dataclass
class JournalEntry:
    """Where one deployment stands. Crosses agent, signals and status."""

    key: str
    id: str
    name: str
    group: str
    state: str = RECEIVED
    action: str = "CREATE"
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    received_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    signalled_at: float | None = None
    transport: str | None = None
    signal_attempts: int = 0
    next_signal_at: float = 0.0
    signal_error: str | None = None
    signal_final: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> "JournalEntry":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def signal_pending(self) -> bool:
        """True while a finished result still has to reach the orchestrator."""
        return self.state == FINISHED and not self.signal_final


@dataclass
class StateDir:
    """The agent's state directory and the records in it."""

    root: Path
    _journal: dict[str, JournalEntry] | None = field(default=None, repr=False)
    _lock_fd: int = field(default=-1, repr=False)
    _sources: dict[str, SourceCache | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Absolute: hooks run with their own working directory.
        self.root = Path(self.root).absolute()

    # -- layout ---------------------------------------------------------
    def ensure(self) -> "StateDir":
        ensure_dir(self.root)
        ensure_dir(self.root / "sources")
        ensure_dir(self.root / "deployments")
        ensure_dir(self.root / "hooks")
        return self

    def deployment_dir(self, key: str) -> Path:
        return self.root / "deployments" / safe_component(key)

    def hook_dir(self, group: str, kind: str) -> Path:
        """Working (`kind`='work') or outputs ('outputs') directory of one hook."""
        return ensure_dir(self.root / "hooks" / safe_component(group) / kind)

    # -- single instance ------------------------------------------------
    def lock(self) -> None:
        """Take the agent lock, or raise StateError naming who holds it."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateError(
                f"another guestagent (pid {holder}) is using {self.root}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- sources --------------------------------------------------------
    def load_source(self, name: str) -> SourceCache | None:
        # Read from disk once; afterwards save_source keeps the copy in memory current.
        if name not in self._sources:
            self._sources[name] = self._read_source(name)
        return self._sources[name]

    def _read_source(self, name: str) -> SourceCache | None:
        data = read_json(self.root / "sources" / f"{safe_component(name)}.json")
        if not isinstance(data, dict) or not isinstance(data.get("document"), dict):
            return None
        return SourceCache(**{k: data.get(k) for k in ("document", "etag", "last_modified")},
                           fetched_at=data.get("fetched_at") or 0.0)

    def save_source(self, name: str, cache: SourceCache) -> None:
        write_json(self.root / "sources" / f"{safe_component(name)}.json",
                   dataclasses.asdict(cache))
        self._sources[name] = cache

    def save_health(self, sources_failing: dict[str, str]) -> None:
        """Record a completed pass and which sources are unreachable (callers write it after
        the first pass of each start and when it changes: see guestagent.health)."""
        from guestagent import health

        health.write(self.root, sources_failing)

    # -- journal --------------------------------------------------------
    def journal(self) -> dict[str, JournalEntry]:
        """All journal entries by key; read from disk once, then kept in memory."""
        if self._journal is None:
            self._journal = {}
            base = self.root / "deployments"
            for child in sorted(base.iterdir()) if base.is_dir() else []:
                try:
                    data = read_json(child / "journal.json")
                except StateError:
                    continue  # a torn directory from a crash mid-create: nothing was promised
                if isinstance(data, dict) and "key" in data:
                    entry = JournalEntry.from_dict(data)
                    self._journal[entry.key] = entry
        return self._journal

    def record(self, entry: JournalEntry) -> None:
        """Persist a journal transition before anything that depends on it happens."""
        try:
            ddir = ensure_dir(self.deployment_dir(entry.key))
            write_json(ddir / "journal.json", dataclasses.asdict(entry))
        except StateError:
            # Callers change entries in place: memory must not run ahead of the disk.
            self._journal = None
            raise
        self.journal()[entry.key] = entry
        crashpoint.after(entry.state)

    def save_deployment(self, key: str, raw: dict) -> None:
        self._save_record(key, "deployment.json", raw)

    def load_deployment(self, key: str) -> dict | None:
        return self._load_record(key, "deployment.json")

    def save_response(self, key: str, response: dict) -> None:
        self._save_record(key, "response.json", response)

    def load_response(self, key: str) -> dict | None:
        return self._load_record(key, "response.json")

    def _save_record(self, key: str, name: str, data: dict) -> None:
        # The journal record that follows in the same directory syncs the directory.
        write_json(ensure_dir(self.deployment_dir(key)) / name, data, fsync_dir=False)

    def _load_record(self, key: str, name: str) -> dict | None:
        data = read_json(self.deployment_dir(key) / name)
        return data if isinstance(data, dict) else None

    def forget_secrets(self, key: str) -> None:
        """Drop the stored deployment (it carries credentials) once it is no longer needed."""
        try:
            os.unlink(self.deployment_dir(key) / "deployment.json")
        except FileNotFoundError:
            pass

    def strip_secrets(self, key: str, raw: dict, names: Iterable[str]) -> None:
        """Store deployment `raw` again (a hook's cleanup needs it later) minus the inputs `names`."""
        names = set(names)
        inputs = raw.get("inputs")
        if isinstance(inputs, list):
            raw = dict(raw, inputs=[i for i in inputs
                                    if not (isinstance(i, dict) and i.get("name") in names)])
        self.save_deployment(key, raw)

    def entries(self) -> Iterator[JournalEntry]:
        return iter(list(self.journal().values()))
