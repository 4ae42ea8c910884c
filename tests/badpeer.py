"""A loopback HTTP server that misbehaves on purpose, one way per instance (`mode`):

- `trickle`: status line and headers, then one body byte every `interval` seconds (the body
  is `drip`, by default 40 bytes of JSON)
- `trickle_headers`: the status line and headers themselves one byte every `interval`
- `hang_after_headers`: headers announcing a body, then silence
- `hang`: reads the request, never answers
- `huge`: 200 and an endless body at full speed, no length
- `redirect`: 302 to `location` (e.g. another BadPeer in `ok` mode, on another port)
- `wrong_type`: 200 with an HTML page
- `ok`: 200 with `body` (JSON), so it can stand as the far end of a redirect
- `raw`: `body` as the whole reply, verbatim, then the connection closed (for fuzzing)

Every request it read is recorded (`requests`: method, target, lower-cased headers). It
speaks TLS when given a server context. Each connection gets its own thread; `stop()` ends
them all.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass

MODES = ("trickle", "trickle_headers", "hang_after_headers", "hang", "huge", "redirect",
         "wrong_type", "ok", "raw")


@dataclass
class Seen:
    method: str
    target: str
    headers: dict


class BadPeer:
    def __init__(self, mode: str, *, interval: float = 0.2, location: str = "",
                 body: bytes = b'{"ok": true}', drip: bytes = b"[" + b" " * 38 + b"]",
                 tls: ssl.SSLContext | None = None):
        if mode not in MODES:
            raise ValueError(mode)
        self.mode, self.interval, self.location, self.body, self.tls = (mode, interval,
                                                                        location, body, tls)
        self.drip = drip
        self.requests: list[Seen] = []
        self.sent = 0  # body bytes written (huge, trickle)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._sock.getsockname()[1]}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:  # the 0.1 s accept timeout, or closed
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self._read_request(conn)
            self._misbehave(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass  # the client gave up or refused our certificate: expected
        finally:
            conn.close()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ValueError("closed before the request ended")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        with self._lock:
            self.requests.append(Seen(method, target, headers))

    def _head(self, status: str, headers: dict) -> bytes:
        lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _misbehave(self, conn: socket.socket) -> None:
        mode = self.mode
        json_head = {"Content-Type": "application/json", "Content-Length": str(len(self.drip))}
        if mode == "hang":
            self._stop.wait(60)
        elif mode == "hang_after_headers":
            conn.sendall(self._head("200 OK", json_head))
            self._stop.wait(60)
        elif mode == "trickle":
            conn.sendall(self._head("200 OK", json_head))
            self._drip(conn, self.drip)
        elif mode == "trickle_headers":
            self._drip(conn, self._head("200 OK", json_head))
        elif mode == "huge":
            conn.sendall(self._head("200 OK", {"Content-Type": "application/json",
                                                "Connection": "close"}))
            block = b" " * 65536
            while not self._stop.is_set():
                conn.sendall(block)
                self.sent += len(block)
        elif mode == "redirect":
            conn.sendall(self._head("302 Found", {"Location": self.location,
                                                  "Content-Length": "0"}))
        elif mode == "wrong_type":
            page = b"<html><body>captive portal</body></html>"
            conn.sendall(self._head("200 OK", {"Content-Type": "text/html",
                                                "Content-Length": str(len(page))}) + page)
        elif mode == "raw":
            conn.sendall(self.body)
        else:
            conn.sendall(self._head("200 OK", {"Content-Type": "application/json",
                                                "Content-Length": str(len(self.body)),
                                                "Connection": "close"}) + self.body)

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self._stop.wait(self.interval):
                return
            conn.sendall(data[i:i + 1])
            self.sent += 1


def elapsed(fn) -> tuple[float, BaseException | None]:
    """(seconds `fn()` took, the exception it raised or None)."""
    start = time.monotonic()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 -- handed back for the test to inspect
        return time.monotonic() - start, exc
    return time.monotonic() - start, None
