"""Reading JSON object files the way the local sources need (shared by heat_local and local),
and remembering what was read so an unchanged file costs a stat call, not a parse."""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

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
class LastRead:
    """The document a collector instance last read, and the signature of its files just before."""

    signature: Signature
    document: dict

    def current(self, signature: Signature, previous: SourceCache | None) -> bool:
        """True when the files are as they were and the caller holds the document read from them
        (a fresh process, or a copy the caller failed to save, means reading in full)."""
        return (previous is not None and signature == self.signature
                and (previous.document is self.document or previous.document == self.document))


def remember(signature: Signature, document: dict, settle_ns: int = SETTLE_NS) -> LastRead | None:
    """A LastRead for a full read made after taking `signature`; None while a file is too new
    for its stamp to be trusted (the next poll then reads in full again)."""
    newest = max((max(s.mtime_ns, s.ctime_ns) for _, s in signature if s is not None), default=0)
    if time.time_ns() - newest < settle_ns:
        return None
    return LastRead(signature, document)


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
