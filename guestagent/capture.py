"""What a child prints, kept on disk within a fixed size.

Each stream is a pipe drained by a thread into its capture file. The file holds everything
up to HEAD + TAIL bytes; beyond that it keeps the first HEAD and the last TAIL bytes with one
line between them saying exactly how many bytes were dropped, so a hook that prints without
end costs at most about 2 MiB of disk per stream. When the disk is full the file is emptied
(its space given back), the stream is still drained so the child never blocks, and `error`
says what happened; the first and last few KiB stay in memory for the failure message.

When the child itself has exited, whatever it left in the pipe is taken and the file is
finished at once: a background grandchild still holding the pipe delays nothing (its later
output is read and thrown away, so it never gets SIGPIPE).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import termios
import threading
from collections import deque
from pathlib import Path

from guestagent import fstrust

HEAD = 1024 * 1024
TAIL = 1024 * 1024
# How much of each end stays in memory, for a failure message when the file could not be kept.
MEMORY = 16 * 1024
_CHUNK = 64 * 1024


def marker(dropped: int, head: int = HEAD, tail: int = TAIL) -> bytes:
    """The line that stands where `dropped` bytes of a long capture were left out."""
    return (f"\n[... guestagent dropped {dropped} bytes here; a capture keeps the first {head} "
            f"and the last {tail} bytes ...]\n").encode()


class Capture:
    """One output stream of one child: `write_fd` is the child's end; call `finish()` once
    the child has exited. The file keeps the first `head` and the last `tail` bytes."""

    def __init__(self, path: Path, wake_fd: int, head: int = HEAD, tail: int = TAIL):
        self.path = Path(path)
        self.head_size, self.tail_size = head, tail
        self.file_fd = fstrust.open_for_writing(self.path)
        self.read_fd, self.write_fd = os.pipe()
        os.set_inheritable(self.read_fd, False)
        self.total = 0            # bytes the child printed
        self.kept = 0             # bytes written to the file so far
        self.head = bytearray()   # the first MEMORY bytes
        self.last = bytearray()   # the last MEMORY bytes
        # The last `tail` bytes after the first `head`, as chunks (dropping from the left is
        # cheap); `_tail_len` is their total, which may exceed `tail` by part of one chunk.
        self._tail: deque[bytes] = deque()
        self._tail_len = 0
        self.error: str | None = None
        self._wake_fd = wake_fd
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._pump, name=f"capture {self.path.name}",
                                        daemon=True)

    def start(self) -> None:
        """Close our copy of the child's end (the child has its own) and start draining."""
        os.close(self.write_fd)
        self.write_fd = -1
        self._thread.start()

    def finish(self) -> None:
        """Wait until the file is complete (the caller has woken the pump: the child exited)."""
        self._done.wait()

    def tail(self) -> bytes:
        """The last `tail` bytes printed after the first `head` (fewer if fewer came)."""
        data = b"".join(self._tail)
        return data[len(data) - self.tail_size:] if len(data) > self.tail_size else data

    def memory_text(self) -> str:
        """The first and last MEMORY bytes printed, for when the file could not be kept."""
        dropped = self.total - len(self.head) - len(self.last)
        tail = bytes(self.last[-dropped:]) if dropped < 0 else bytes(self.last)
        middle = (f"\n[... guestagent dropped {dropped} bytes here; its file could not be "
                  f"kept, the first and last {MEMORY} bytes were ...]\n").encode() \
            if dropped > 0 else b""
        return (bytes(self.head) + middle + tail).decode("utf-8", "replace")

    # -- the pump thread ----------------------------------------------------
    def _pump(self) -> None:
        try:
            while True:
                ready = select.select([self.read_fd, self._wake_fd], [], [])[0]
                if self._wake_fd in ready:
                    self._take_buffered()  # the child exited: only what it left in the pipe
                    break
                data = os.read(self.read_fd, _CHUNK)
                if not data:
                    break  # every writer closed its end
                self._take(data)
            self._complete()
        finally:
            os.close(self.file_fd)
            self._done.set()
        self._discard()

    def _take_buffered(self) -> None:
        buf = fcntl.ioctl(self.read_fd, termios.FIONREAD, struct.pack("i", 0))
        left = struct.unpack("i", buf)[0]
        while left > 0:
            data = os.read(self.read_fd, min(left, _CHUNK))
            if not data:
                return
            left -= len(data)
            self._take(data)

    def _take(self, data: bytes) -> None:
        before = self.total
        self.total += len(data)
        if len(self.head) < MEMORY:
            self.head += data[:MEMORY - len(self.head)]
        self.last += data[-MEMORY:]
        del self.last[:max(0, len(self.last) - MEMORY)]
        if self.total > self.head_size and self.tail_size:
            chunk = data[max(0, self.head_size - before):]
            self._tail.append(chunk)
            self._tail_len += len(chunk)
            while self._tail_len - len(self._tail[0]) >= self.tail_size:
                self._tail_len -= len(self._tail.popleft())
        room = self.head_size + self.tail_size - self.kept
        if self.error is None and room > 0:
            self._write(data[:room])

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(self.file_fd, view)
                self.kept += written
                view = view[written:]
        except OSError as exc:
            self._fail(exc)

    def _complete(self) -> None:
        """Past head + tail: cut the file to head, then the marker and the last tail bytes."""
        head, tail = self.head_size, self.tail_size
        if self.error is not None or self.total <= head + tail:
            return
        try:
            os.ftruncate(self.file_fd, head)
            os.lseek(self.file_fd, head, os.SEEK_SET)
            last = self.tail()
            view = memoryview(marker(self.total - head - len(last), head, tail) + last)
            while view:
                view = view[os.write(self.file_fd, view):]
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "disk full" if full else exc.strerror
        self.error = f"cannot write {self.path}: {why} (after {self.total} bytes printed)"
        try:
            os.ftruncate(self.file_fd, 0)  # give the space back: the agent must record results
        except OSError:
            pass

    def _discard(self) -> None:
        # Whatever a background grandchild still prints is read and dropped until it closes.
        try:
            while os.read(self.read_fd, _CHUNK):
                pass
        except OSError:
            pass
        finally:
            os.close(self.read_fd)
