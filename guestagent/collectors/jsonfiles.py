"""Reading JSON object files the way the local sources need (shared by heat_local and local)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from guestagent.errors import SourceUnavailable

MAX_FILE = 16 * 1024 * 1024


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
                _check_trusted(source, path, st)
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


def _check_trusted(source: str, path: Path, st: os.stat_result) -> None:
    # Metadata decides what runs as root: refuse anything another user could have written.
    if st.st_uid != os.geteuid():
        raise SourceUnavailable(source, f"{path}: owned by uid {st.st_uid}, not by us; refused")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SourceUnavailable(source, f"{path}: writable by group or others; refused")
