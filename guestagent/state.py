"""Everything guestagent keeps on disk, and the one way it writes a file.

Layout under the state directory (0700, files 0600):

    sources/<name>.json            last good document of each source, with its validators
    deployments/<key>/journal.json the deployment's journal entry (the state machine: journal.py)
    deployments/<key>/deployment.json  the deployment as received (holds signal credentials)
    deployments/<key>/response.json    the full hook response (untrimmed)
    deployments/<key>/stdout, stderr   what the hook printed, in full
    hooks/<group>/...              hook working and outputs directories
    lock                           held by the running agent
    health.json                    first pass done, sources unreachable (guestagent.health)
    refreshed.sha256               digest of the metadata the refresh phases last ran for

Records a deployment depends on are synced as they are written. Caches and the views
rebuilt from them (source documents, os-collect-config files) are written atomically but
synced later, together (LazySync), so a pushed change reaches its hook without waiting on
the disk for them.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from guestagent import fstrust
from guestagent.errors import StateError, UntrustedPath

DIR_MODE = 0o700
FILE_MODE = 0o600

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
    """Create `path` and any missing parents with `mode`; tighten `path` if it exists looser.

    `path` (and each directory created) must be a real directory owned by root or by us: a
    symbolic link, a file, or another user's directory there is refused (UntrustedPath), never
    followed or chmod-ed. Its mode is set through a no-follow descriptor.
    """
    path = Path(path)
    try:
        missing = []
        probe = path
        while not os.path.lexists(probe):  # a dangling symlink exists: it is refused below
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=mode)
            except FileExistsError:
                pass  # created meanwhile by another process: checked like any other
            _own_directory(directory, mode, force=True)  # mkdir's mode is filtered by the umask
        if not missing:
            _own_directory(path, mode)
    except UntrustedPath:
        raise
    except OSError as exc:
        raise StateError(f"cannot create directory {path}: {exc.strerror}") from exc
    return path


def _own_directory(path: Path, mode: int, force: bool = False) -> None:
    """Check `path` is a directory of ours (not through a symlink) and give it `mode`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symbolic link" if os.path.islink(path) else "not a directory"
            raise UntrustedPath(path, f"is {kind}; a directory of ours belongs there",
                                "directory") from None
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid not in fstrust.trusted_owners():
            raise UntrustedPath(path, f"owned by uid {st.st_uid}, not by root or uid "
                                      f"{os.geteuid()}", "directory")
        if force or stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = FILE_MODE, *, fsync: bool = True,
                 fsync_dir: bool = True) -> None:
    """Write `data` to `path` atomically: temp file, fsync, rename, fsync dir.

    A reader (or a crash) sees the old content or the new, never a mix. A symbolic link at
    `path` is replaced, never written through (the temp file is created exclusively and
    renamed over it). `fsync_dir=False`
    when a write that follows in the same directory syncs it anyway; `fsync=False` (no
    syncing at all) for scratch files rewritten whenever they are needed, and for LazySync,
    which syncs its files later.
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
            _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {_why(exc)}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_json(path: Path, obj: Any, mode: int = FILE_MODE, *, fsync: bool = True,
               fsync_dir: bool = True, sort_keys: bool = True) -> None:
    """Write `obj` as JSON through write_atomic (keys sorted unless `sort_keys` is False)."""
    write_atomic(path, json_bytes(obj, sort_keys), mode, fsync=fsync, fsync_dir=fsync_dir)


def json_bytes(obj: Any, sort_keys: bool = True) -> bytes:
    """`obj` as the JSON every state file holds."""
    return json.dumps(obj, indent=1, sort_keys=sort_keys).encode()


class LazySync:
    """Files written atomically now and made durable later, together.

    For what can be rebuilt if a crash loses it (a source's cached document, the
    os-collect-config files): `write` does not wait on the disk; `sync` (once the hook has
    started, and at the end of every pass) flushes them, then writes what vouches for them
    (`then`), so a crash may lose them but never keeps a voucher without them.
    """

    def __init__(self) -> None:
        self._written: dict[Path, None] = {}
        self._then: dict[Path, bytes] = {}

    def write(self, path: Path, data: bytes, mode: int = FILE_MODE) -> None:
        write_atomic(path, data, mode, fsync=False)
        self._written[Path(path)] = None

    def then(self, path: Path, data: bytes) -> None:
        """Write `path` (synced) at the next `sync`, after everything written before it."""
        self._then[Path(path)] = data

    def sync(self) -> None:
        """Flush what `write` wrote, then write what `then` queued; StateError on failure
        (the queue is kept for the next attempt)."""
        directories = dict.fromkeys(path.parent for path in self._written)
        for path in self._written:
            _fsync(path, os.O_RDONLY | os.O_NOFOLLOW)
        for directory in directories:
            _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)
        self._written = {}
        for path, data in list(self._then.items()):
            write_atomic(path, data)
            del self._then[path]  # only once written: a failure keeps the rest queued


def _why(exc: OSError) -> str:
    # A full disk is said so: the agent's operator acts on that, not on an errno name.
    return "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror


def _fsync(path: Path, flags: int) -> None:
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # replaced or removed since: nothing of it to keep
    except OSError as exc:
        raise StateError(f"cannot sync {path}: {_why(exc)}") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StateError(f"cannot sync {path}: {_why(exc)}") from exc
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """Read a JSON file; None when it does not exist, StateError when it is corrupt."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc


class LockHeld(StateError):
    """Another process holds the lock; `holder` is what it wrote in the file."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is locked by {holder or 'another process'}")
        self.holder = holder


def hold_lock(path: Path, text: str) -> int:
    """Lock `path` exclusively (created 0600, never through a link or a FIFO) and write `text`
    in it; the returned descriptor holds the lock until closed. LockHeld when taken."""
    try:
        fd = fstrust.open_for_writing(path, FILE_MODE, truncate=False, readable=True)
    except UntrustedPath:
        raise
    except OSError as exc:
        raise StateError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip()
        os.close(fd)
        raise LockHeld(Path(path), holder) from None
    os.ftruncate(fd, 0)
    os.write(fd, text.encode())
    return fd


@dataclass
class SourceCache:
    """The last good document of one source, with what makes the next request conditional."""

    document: dict
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class StateDir:
    """The agent's state directory and the records in it."""

    root: Path
    _lock_fd: int = field(default=-1, repr=False)
    _sources: dict[str, SourceCache | None] = field(default_factory=dict, repr=False)
    lazy: LazySync = field(default_factory=LazySync, repr=False)

    def __post_init__(self) -> None:
        # Absolute: hooks run with their own working directory.
        self.root = Path(self.root).absolute()

    # -- layout ---------------------------------------------------------
    def ensure(self) -> StateDir:
        """Create the layout; UntrustedPath when the state directory (or a directory in it) is
        another user's, writable by others, or a symbolic link."""
        try:
            st = os.lstat(self.root)
            if stat.S_ISLNK(st.st_mode) and st.st_uid in fstrust.trusted_owners():
                # An operator's link to the real directory: judged (and used) by its target.
                self.root = Path(os.path.realpath(self.root))
            fstrust.check_trusted(self.root, what="state directory")
        except FileNotFoundError:
            pass  # created below, ours
        except OSError as exc:
            raise StateError(f"state directory {self.root}: {exc.strerror}") from exc
        ensure_dir(self.root)
        ensure_dir(self.root / "sources")
        ensure_dir(self.root / "deployments")
        ensure_dir(self.root / "hooks")
        return self

    def deployment_dir(self, key: str) -> Path:
        return self.root / "deployments" / safe_component(key)

    # -- single instance ------------------------------------------------
    def lock(self) -> None:
        """Take the agent lock, or raise StateError naming who holds it."""
        try:
            self._lock_fd = hold_lock(self.root / "lock", str(os.getpid()))
        except LockHeld as exc:
            raise StateError(f"another guestagent (pid {exc.holder or '?'}) is using "
                             f"{self.root}") from None

    # -- sources --------------------------------------------------------
    def load_source(self, name: str) -> SourceCache | None:
        # Read from disk once; afterwards save_source keeps the copy in memory current.
        if name not in self._sources:
            self._sources[name] = self._read_source(name)
        return self._sources[name]

    def _read_source(self, name: str) -> SourceCache | None:
        try:
            data = read_json(self.root / "sources" / f"{safe_component(name)}.json")
        except StateError:
            return None  # a cache a crash cut short (it is synced lazily): fetched anew
        if not isinstance(data, dict) or not isinstance(data.get("document"), dict):
            return None
        return SourceCache(**{k: data.get(k) for k in ("document", "etag", "last_modified")})

    def save_source(self, name: str, cache: SourceCache) -> None:
        # A cache: synced later (LazySync), not on the way from a change to its hook.
        self.lazy.write(self.root / "sources" / f"{safe_component(name)}.json",
                        json_bytes(dataclasses.asdict(cache)))
        self._sources[name] = cache

    def save_health(self, sources_failing: dict[str, str], loop_error: str | None = None) -> None:
        """Record a completed pass, which sources are unreachable and the error of a pass that
        failed unexpectedly (callers write it after the first pass of each start and when it
        changes: see guestagent.health)."""
        from guestagent import health

        health.write(self.root, sources_failing, loop_error)

    # -- per-deployment records (the journal entry itself: journal.py) -------
    def save_deployment(self, key: str, raw: dict) -> None:
        self._save_record(key, "deployment.json", raw)

    def load_deployment(self, key: str) -> dict | None:
        return self._load_record(key, "deployment.json")

    def save_response(self, key: str, response: dict) -> None:
        # Key order kept: the reply reaches Heat as the hook wrote it.
        write_json(ensure_dir(self.deployment_dir(key)) / "response.json", response,
                   fsync_dir=False, sort_keys=False)

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

    def archive(self, names: Iterable[str], label: str) -> Path:
        """Move the entries `names` of the state directory to `archive/<label>/`, remove the
        deployments' stored credentials there, and lay the directory out anew."""
        target = ensure_dir(self.root / "archive" / safe_component(label))
        try:
            for name in names:
                if os.path.lexists(self.root / name):
                    os.replace(self.root / name, target / name)
            for stored in (target / "deployments").glob("*/deployment.json"):
                stored.unlink()  # the old server's signal credentials are never used again
        except OSError as exc:
            raise StateError(f"cannot archive into {target}: {exc.strerror}") from exc
        self._sources.clear()
        self.ensure()
        return target

    def move_into(self, path: Path, directory: Path) -> Path:
        """Move the file `path` (anywhere) into `directory` under the state directory."""
        ensure_dir(directory)
        target = directory / safe_component(str(path).strip("/"))
        try:
            os.replace(path, target)
        except OSError as exc:
            try:  # another file system: copy, then remove
                write_atomic(target, Path(path).read_bytes())
                os.unlink(path)
            except OSError as again:
                raise StateError(f"cannot move {path} into {directory}: "
                                 f"{again.strerror}") from exc
        return target

    def strip_secrets(self, key: str, raw: dict, names: Iterable[str]) -> None:
        """Store deployment `raw` again (a hook's cleanup needs it later) minus the inputs `names`."""
        names = set(names)
        inputs = raw.get("inputs")
        if isinstance(inputs, list):
            raw = dict(raw, inputs=[i for i in inputs
                                    if not (isinstance(i, dict) and i.get("name") in names)])
        self.save_deployment(key, raw)
