"""Trusting the filesystem no further than its owners: the agent runs as root, so a file or
directory another user owns or could write decides nothing, and nothing the agent writes
or reads back follows a symbolic link someone planted.

- `check_trusted`: a path (state directory, config file, hooks directory, local source file)
  must be owned by root or by the agent's own user and not writable by group or others.
- `open_for_writing`: open an existing-or-new regular file to write, never through a
  symbolic link and never blocking on a FIFO; anything else is refused.
- `read_regular`: read at most `limit` bytes of a regular file, the same way.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from guestagent.errors import UntrustedPath

# Opening never follows a final symbolic link, and never waits for a FIFO's other end.
_NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO", stat.S_IFLNK: "a symbolic link",
          stat.S_IFSOCK: "a socket"}


def trusted_owners() -> frozenset[int]:
    """The users whose files the agent may act on: root and the agent's effective user."""
    return frozenset({0, os.geteuid()})


def untrusted_reason(uid: int, mode: int) -> str | None:
    """Why a file or directory with owner `uid` and `mode` cannot be trusted; None if it can."""
    if uid not in trusted_owners():
        return f"owned by uid {uid}, not by root or uid {os.geteuid()}"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {stat.S_IMODE(mode):04o})"
    return None


def check_trusted(path: Path | str, st: os.stat_result | None = None, *,
                  what: str = "path") -> os.stat_result:
    """The lstat of `path` (or the `st` given), UntrustedPath naming it when another user owns
    it, others may write it, or it is a symbolic link. FileNotFoundError passes through."""
    if st is None:
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UntrustedPath(path, "a symbolic link", what)
    reason = untrusted_reason(st.st_uid, st.st_mode)
    if reason:
        raise UntrustedPath(path, reason, what)
    return st


def kind(mode: int) -> str:
    """What a file of `mode` is, in words ("a FIFO", "a directory")."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_for_writing(path: Path | str, mode: int = 0o600, *, truncate: bool = True,
                     readable: bool = False) -> int:
    """A descriptor (blocking, close-on-exec; also readable when `readable`) on the regular
    file `path`, created with `mode` if missing. A symbolic link, FIFO, device or directory
    there is refused with UntrustedPath instead of being followed, blocked on or truncated;
    so is a file another user owns."""
    access = os.O_RDWR if readable else os.O_WRONLY
    try:
        fd = os.open(path, access | os.O_CREAT | _NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedPath(path, "a symbolic link, not written through", "file") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # a FIFO with no reader; a directory
            raise UntrustedPath(path, "not a regular file, not written", "file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UntrustedPath(path, f"{kind(st.st_mode)}, not written", "file")
        if st.st_uid not in trusted_owners():
            raise UntrustedPath(path, f"owned by uid {st.st_uid}, not written", "file")
        if truncate:
            os.ftruncate(fd, 0)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class NotRegular(OSError):
    """`read_regular` found something that is not a regular file (a FIFO, a device, a link)."""


def read_regular(path: Path | str, limit: int) -> tuple[bytes, int]:
    """The first `limit` bytes of the regular file `path` and its whole size. NotRegular when
    it is a symbolic link, FIFO, device or directory (never followed, never blocked on);
    FileNotFoundError when absent; other OSError as raised."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(exc.errno, "is a symbolic link", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(errno.EINVAL, f"is {kind(st.st_mode)}", str(path))
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), max(st.st_size, limit - left)
    finally:
        os.close(fd)
