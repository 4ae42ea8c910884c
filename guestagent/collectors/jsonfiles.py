"""Reading JSON object files the way the local sources need (shared by heat_local and local),
and remembering what was read so an unchanged file costs a stat call, not a parse."""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from guestagent.collectors.base import NOT_MODIFIED, Collected
from guestagent.errors import SourceUnavailable
from guestagent.state import SourceCache

MAX_FILE = 16 * 1024 * 1024
# A file whose timestamps are this recent may change again within the same timestamp tick
# (coarse on every filesystem, 2 s on vfat) without stat seeing it: such a read is not trusted.
SETTLE_NS = 2_000_000_000


class Stamp(NamedTuple):
    """What stat says about a file or directory; any write, rename or chmod changes it."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int
    uid: int


# (path, its stamp or None when it does not exist), in reading order.
Signature = tuple[tuple[str, "Stamp | None"], ...]


def stamp(st: os.stat_result) -> Stamp:
    """The Stamp of a stat result."""
    return Stamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode,
                 st.st_uid)


@dataclass
class ReadMemo:
    """What a file source instance last read, with the signature of its files just before:
    `collect` answers NOT_MODIFIED instead of reading again while both still hold."""

    settle_ns: int = SETTLE_NS
    _signature: Signature | None = field(default=None, repr=False)
    _document: dict | None = field(default=None, repr=False)

    def collect(self, signature: Signature, previous: SourceCache | None,
                read: Callable[[Signature], dict]):
        """NOT_MODIFIED when the files are as last read and the caller holds the document read
        from them (a fresh process, or a copy the caller failed to save, means reading in
        full); else `read(signature)` as Collected."""
        if (self._signature is not None and previous is not None and signature == self._signature
                and (previous.document is self._document or previous.document == self._document)):
            return NOT_MODIFIED
        self._signature = self._document = None  # remembered again only when a read succeeds
        document = read(signature)
        newest = max((max(s.mtime_ns, s.ctime_ns) for _, s in signature if s is not None),
                     default=0)
        if time.time_ns() - newest >= self.settle_ns:  # else too new for its stamp to be trusted
            self._signature, self._document = signature, document
        return Collected(document)


@dataclass
class FileSource:
    """What `local` and `heat_local` share: a poll is a few stat calls (`_signature`), and the
    files are read (`_read`) only when those changed. Subclasses are dataclasses with a
    `name` (the source's)."""

    # init=False keeps it out of subclasses' constructors (kw_only= needs Python 3.10).
    memo: ReadMemo = field(default_factory=ReadMemo, repr=False, init=False)

    def collect(self, previous: SourceCache | None = None):
        """NOT_MODIFIED, or the files' merged document (see ReadMemo.collect)."""
        return self.memo.collect(self._signature(), previous, self._read)

    def cheap_poll(self, previous: SourceCache | None) -> bool:
        """Always: a poll is a stat call per file or directory."""
        return True

    def _stamp(self, path: Path | str, absent: tuple = (FileNotFoundError,)) -> Stamp | None:
        """The Stamp of `path`, None when stat fails with one of `absent`; SourceUnavailable
        naming the path for any other failure."""
        try:
            return stamp(os.stat(path))
        except absent:
            return None
        except OSError as exc:
            raise SourceUnavailable(self.name, f"{path}: {exc.strerror}") from exc

    def _signature(self) -> Signature:
        raise NotImplementedError

    def _read(self, signature: Signature) -> dict:
        raise NotImplementedError


def path_option(options: dict, default: str) -> list[Path]:
    """The `path` option of a file source: one path or a list, `default` when unset."""
    paths = options.get("path") or [default]
    return [Path(p) for p in ([paths] if isinstance(paths, str) else paths)]


def read_object(source: str, path: Path, check_owner: bool = False) -> dict:
    """Load one JSON object file; SourceUnavailable naming the file when it is not usable."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if check_owner:
                check_trusted(source, path, st.st_uid, st.st_mode)
            if st.st_size > MAX_FILE:
                raise SourceUnavailable(source, f"{path}: larger than {MAX_FILE} bytes")
            data = json.load(fh)
    except OSError as exc:
        raise SourceUnavailable(source, f"{path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SourceUnavailable(source, f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SourceUnavailable(source, f"{path}: must hold a JSON object, not {type(data).__name__}")
    return data


def check_trusted(source: str, path: Path, uid: int, mode: int) -> None:
    """Refuse a file or directory (its owner and mode) another user owns or could write."""
    # Metadata decides what runs as root: refuse anything another user could have written.
    if uid != os.geteuid():
        raise SourceUnavailable(source, f"{path}: owned by uid {uid}, not by us; refused")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SourceUnavailable(source, f"{path}: writable by group or others; refused")
