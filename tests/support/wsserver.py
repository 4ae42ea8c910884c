"""A loopback websocket server speaking the part of Zaqar's websocket API the agent uses.

RFC 6455 framing written out here (handshake, masked client frames, ping/pong, close with a
code), so that tests can do what the real Zaqar cannot be made to do on cue: close a
connection with code 4003 ("Authentication expired."), or show which tokens a client
authenticated with. Requests: `authenticate` (200, the X-Auth-Token recorded),
`subscription_create` (201); `notify(body)` pushes a Notification to every subscriber.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import socketserver
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class _Conn(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return
            head += chunk
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        owner = self.server.owner
        with owner.lock:
            owner.connections.append(self)
        try:
            while True:
                opcode, payload = _read_frame(sock)
                if opcode == CLOSE:
                    return
                if opcode == PING:
                    self.send(PONG, payload)
                elif opcode == TEXT:
                    self.answer(json.loads(payload))
        except (OSError, ConnectionError):
            return
        finally:
            with owner.lock:
                owner.subscribers.discard(self)

    def answer(self, request: dict) -> None:
        owner = self.server.owner
        action = request.get("action")
        status = 400
        if action == "authenticate":
            owner.tokens.append(request["headers"].get("X-Auth-Token"))
            status = 200
        elif action == "subscription_create":
            with owner.lock:
                owner.subscribers.add(self)
            status = 201
        self.send(TEXT, json.dumps({"request": request, "headers": {"status": status},
                                    "body": {}}).encode())

    def send(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        header = struct.pack("!BB", 0x80 | opcode, size) if size < 126 else \
            struct.pack("!BBH", 0x80 | opcode, 126, size)
        self.request.sendall(header + payload)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ZaqarWebsocket


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exact(sock, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", _read_exact(sock, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", _read_exact(sock, 8))[0]
    mask = _read_exact(sock, 4) if second & 0x80 else b"\0\0\0\0"
    data = _read_exact(sock, size)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class ZaqarWebsocket:
    """The server, on 127.0.0.1 and a free port (`url`), served from a thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: list[_Conn] = []  # every connection ever accepted
        self.subscribers: set[_Conn] = set()
        self.tokens: list[str] = []  # as authenticated, in order
        self._server = _Server(("127.0.0.1", 0), _Conn)
        self._server.owner = self
        self.url = f"ws://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def notify(self, body: dict) -> None:
        """Push a post to every subscriber, framed as Zaqar frames it."""
        frame = json.dumps({"body": body, "ttl": 3600, "Message_Type": "Notification",
                            "queue_name": "q"}).encode()
        with self.lock:
            targets = list(self.subscribers)
        for conn in targets:
            conn.send(TEXT, frame)

    def close_all(self, code: int, reason: str) -> None:
        """Close every subscriber's connection with `code` (Zaqar: 4003 when a token expires)."""
        with self.lock:
            targets = list(self.subscribers)
        for conn in targets:
            conn.send(CLOSE, struct.pack("!H", code) + reason.encode())

    def drop_all(self) -> None:
        """End every connection without a close frame, as a crashed server's kernel would."""
        with self.lock:
            targets = list(self.connections)
        for conn in targets:
            try:
                conn.request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
