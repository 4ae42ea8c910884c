"""The one HTTP client: `request()` for every request the agent makes itself, always bounded.

Every exchange has per-operation timeouts (connect, each read) and one overall deadline that
covers connecting, sending and reading the whole reply, redirects included: a peer that
trickles a byte now and then cannot hold a poll or a signal past it.

Requests go through the standard library's `http.client` on a connection kept alive per
host and thread: importing it costs about 15 ms and 3 MiB, and a request well under a
millisecond of CPU, where `requests` cost about 60 ms and 8 MiB to import and several ms per
request (bench/agent.py measured both). That keeps a `--once` with nothing to do, and every
idle poll of the daemon, cheap. Proxies from the environment (`http_proxy`, `https_proxy`
through a CONNECT tunnel, `no_proxy`) and a netrc file are honoured as `requests` honoured
them. Every request, Keystone's included, trusts the same certificates (`_tls_context`).
"""

from __future__ import annotations

import io
import os
import select
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

from guestagent import netenv
from guestagent.errors import TransportError
from guestagent.logs import escape, hide_userinfo

if TYPE_CHECKING:
    import ssl

# (connect, read) seconds; every request the agent makes has a bound.
DEFAULT_TIMEOUT = (10.0, 60.0)
USER_AGENT = "guestagent"
# Replies larger than this are cut here (the caller sees more than it allows and refuses them).
DEFAULT_MAX_BODY = 64 * 1024 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
# Headers that carry credentials: never sent on to a host the request did not name.
_CREDENTIAL_HEADERS = ("authorization", "x-auth-token", "cookie", "proxy-authorization")
_CHUNK = 65536

_local = threading.local()
_contexts: dict[tuple, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()
_classes: tuple | None = None

@dataclass
class Reply:
    """One HTTP reply, read in full. `headers.get(name)` ignores the name's case."""

    status_code: int
    headers: Any
    content: bytes
    url: str

    @property
    def text(self) -> str:
        """The body decoded by its charset (UTF-8 when it names none we know)."""
        try:
            return self.content.decode(_charset(self.headers.get("Content-Type")), "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON, depth- and size-bounded (jsondoc); ValueError when it is not."""
        from guestagent import jsondoc

        return jsondoc.loads(self.content)


class Deadline:
    """The end of one whole exchange (or of several: a login and the request it allows)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        """Seconds left (at most `cap`); TransportError("Timeout") once none are."""
        rest = self.end - time.monotonic()
        if rest <= 0:
            raise self.error()
        return rest if cap is None else min(cap, rest)

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def error(self) -> TransportError:
        return TransportError("Timeout", f"no complete reply within the {self.seconds:g} s "
                                         "deadline")


def request(method: str, url: str, *, headers: Mapping[str, str] | None = None,
            data: bytes | None = None, verify: bool | str = True,
            timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
            max_body: int = DEFAULT_MAX_BODY,
            deadline: float | Deadline | None = None) -> Reply:
    """Send one request and read its reply (at most `max_body` + 1 bytes of body); GET and
    HEAD follow redirects, without credentials to another origin. `timeout` bounds connecting
    and each read; `deadline` (seconds, or a shared Deadline; default connect + read) bounds
    the whole exchange. TransportError when no reply came: refused, reset, timed out, TLS."""
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if not isinstance(deadline, Deadline):
        deadline = Deadline(connect + read if deadline is None else deadline)
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    headers = dict(headers or {})
    for _ in range(MAX_REDIRECTS + 1):
        deadline.left()
        reply = _exchange(method, url, headers, data, verify, (connect, read), max_body,
                          deadline)
        location = reply.headers.get("Location")
        if method not in ("GET", "HEAD") or reply.status_code not in _REDIRECTS or not location:
            return reply
        try:
            target = urljoin(url, location)
            moved = _origin(target) != _origin(url)
        except ValueError:
            raise TransportError("InvalidURL", "redirect to a malformed URL") from None
        if moved:
            # Another host (or scheme, or port) gets no credentials meant for this one.
            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        url = target
    raise TransportError("TooManyRedirects", f"more than {MAX_REDIRECTS}")


def redact_url(url: str) -> str:
    """A URL fit for logs: no userinfo (user:password@) and no query string (pre-signed URLs
    carry their signature there)."""
    url = hide_userinfo(url)
    return url.split("?", 1)[0] + ("?<redacted>" if "?" in url else "")


def is_http_url(url: str) -> bool:
    """Whether `url` is an http(s) URL with a host and a valid port."""
    return _split(url) is not None


def _split(url: str):
    """urlsplit(url) when it is a usable http(s) URL, else None."""
    if not isinstance(url, str) or any(c <= " " or c == "\x7f" for c in url):
        return None  # urlsplit would silently drop a newline; a space is no URL either
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError when the port is not a number in range
    except ValueError:  # also a bracket left open in an IPv6 host
        return None
    return parts if parts.scheme in ("http", "https") and parts.hostname else None


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


# ---- the exchange: http.client --------------------------------------------------------------

def _exchange(method: str, url: str, headers: dict, data: bytes | None, verify: bool | str,
              timeout: tuple[float, float], max_body: int, deadline: Deadline) -> Reply:
    import http.client

    parts = _split(url)
    if parts is None:
        raise TransportError("InvalidURL", f"not an http(s) URL: {redact_url(url)}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
    proxy = netenv.proxy_for(parts) if netenv.configured() else None
    if not any(k.lower() == "authorization" for k in headers):
        # user:password@ in the URL, or a netrc entry, means HTTP basic authentication.
        auth = (netenv.basic(unquote(parts.username), unquote(parts.password or ""))
                if parts.username is not None
                else netenv.netrc_auth(parts.hostname) if netenv.configured() else None)
        if auth:
            headers["Authorization"] = auth
    if proxy is not None and parts.scheme == "http":
        target = f"http://{parts.hostname}{f':{parts.port}' if parts.port else ''}{target}"
        if proxy.username is not None:
            headers["Proxy-Authorization"] = netenv.basic(unquote(proxy.username),
                                                    unquote(proxy.password or ""))
    key = (parts.scheme, parts.hostname, parts.port, str(verify),
           proxy.geturl() if proxy is not None else None)
    for attempt in (1, 2):
        conn, reused = _connection(key, parts, proxy, verify, deadline.left(timeout[0]))
        conn.deadline, conn.read_timeout = deadline, timeout[1]
        phase = "connect"
        try:
            if conn.sock is None:
                conn.connect()
            phase = "read"
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
            # A known length is read whole (a cut body raises); otherwise up to the limit.
            known = resp.length is not None and resp.length <= max_body
            content = resp.read() if known else resp.read(max_body + 1)
        except TransportError:
            _drop(key)
            raise
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
            _drop(key)
            if reused and attempt == 1:
                continue  # the server closed the idle kept-alive connection: open a new one
            raise _transport_error(exc, phase, deadline) from exc
        except (OSError, http.client.HTTPException) as exc:
            _drop(key)
            raise _transport_error(exc, phase, deadline) from exc
        except ValueError as exc:  # http.client refuses a header or target it cannot send
            _drop(key)
            raise TransportError("InvalidRequest", brief_error(exc)) from exc
        if resp.will_close or not resp.isclosed():
            _drop(key)  # the server ends it, or a body over max_body is left unread
        return Reply(resp.status, resp.headers, content, url)
    raise AssertionError("unreachable")


class _Bounded:
    """What both connection classes add to http.client's: every send, TLS handshake and read
    waits at most the read timeout and never past the exchange's deadline."""

    deadline: Deadline
    read_timeout: float
    sock: Any

    def send(self, data) -> None:
        if self.sock is None:
            self.connect()
        view = memoryview(data).cast("B")
        for start in range(0, max(len(view), 1), _CHUNK):
            self.sock.settimeout(self.deadline.left(self.read_timeout))
            self.sock.sendall(view[start:start + _CHUNK])

    def response_class(self, sock, *args, **kwargs):
        return _engine()[2](sock, self.deadline, self.read_timeout, *args, **kwargs)


class _BoundedReader(io.RawIOBase):
    """A socket's reader whose every read is bounded by the deadline."""

    def __init__(self, raw, sock, deadline: Deadline, read_timeout: float):
        super().__init__()
        self._raw, self._sock, self._deadline, self._read = raw, sock, deadline, read_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._sock.settimeout(self._deadline.left(self._read))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _engine() -> tuple:
    """(plain connection, TLS connection, response) classes, built on first use so that
    http.client is imported only by agents that make a request."""
    global _classes
    if _classes is None:
        import http.client

        class Plain(_Bounded, http.client.HTTPConnection):
            pass

        class Secure(_Bounded, http.client.HTTPSConnection):
            def connect(self) -> None:
                http.client.HTTPConnection.connect(self)
                self.sock.settimeout(self.deadline.left(self.timeout))  # the TLS handshake
                name = self._tunnel_host or self.host  # through a proxy: the real host
                self.sock = self._context.wrap_socket(self.sock, server_hostname=name)

        class Response(http.client.HTTPResponse):
            def __init__(self, sock, deadline: Deadline, read_timeout: float, *args, **kwargs):
                super().__init__(sock, *args, **kwargs)
                raw = self.fp.detach()
                self.fp = io.BufferedReader(_BoundedReader(raw, sock, deadline, read_timeout))

        _classes = (Plain, Secure, Response)
    return _classes


def _connection(key: tuple, parts, proxy, verify: bool | str, connect_timeout: float):
    """(connection, reused) for this host, thread, TLS setting and proxy."""
    pool = getattr(_local, "connections", None)
    if pool is None:
        pool = _local.connections = {}
    conn = pool.get(key)
    if conn is not None and conn.sock is not None and not _readable(conn.sock):
        conn.timeout = connect_timeout
        return conn, True
    if conn is not None:
        conn.close()  # closed by the server while idle (readable means EOF or junk)
    plain, secure, _ = _engine()
    host, port = (proxy.hostname, proxy.port) if proxy is not None else (parts.hostname,
                                                                         parts.port)
    if parts.scheme == "https":
        conn = secure(host, port, timeout=connect_timeout, context=_tls_context(verify))
        if proxy is not None:
            tunnel = ({"Proxy-Authorization": netenv.basic(unquote(proxy.username),
                                                     unquote(proxy.password or ""))}
                      if proxy.username is not None else None)
            conn.set_tunnel(parts.hostname, parts.port, headers=tunnel)
    else:
        conn = plain(host, port, timeout=connect_timeout)
    pool[key] = conn
    return conn, False


def _drop(key: tuple) -> None:
    conn = getattr(_local, "connections", {}).pop(key, None)
    if conn is not None:
        conn.close()


def _readable(sock) -> bool:
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """A cached client context: verify=True trusts the system store (where SSL_CERT_FILE and
    SSL_CERT_DIR point, if set) and, where installed, certifi's bundle (what `requests`
    trusted); a path trusts that file or directory only; False trusts anything."""
    import ssl

    key = (str(verify), os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _contexts_lock:
        if key in _contexts:
            return _contexts[key]
        try:
            if verify is False:
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            elif verify is True:
                context = ssl.create_default_context()
                try:
                    import certifi
                except ImportError:
                    pass
                else:
                    context.load_verify_locations(certifi.where())
            elif os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            else:
                context = ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError("SSLError", f"CA certificates {verify}: "
                                             f"{exc.strerror or exc}") from exc
        _contexts[key] = context
        return context


def _transport_error(exc: BaseException, phase: str, deadline: Deadline) -> TransportError:
    import http.client
    import socket
    import ssl

    if deadline.expired():
        return deadline.error()  # whatever broke, the deadline is what ended the exchange
    if isinstance(exc, ssl.SSLError):
        kind = "SSLError"
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        kind = "ConnectTimeout" if phase == "connect" else "ReadTimeout"
    elif isinstance(exc, http.client.IncompleteRead):
        return TransportError("ConnectionError", f"body cut short after {len(exc.partial)} bytes")
    else:
        kind = "ConnectionError"
    detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) \
        or type(exc).__name__
    return TransportError(kind, brief_error(detail))


def _charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def brief_error(exc: BaseException | str) -> str:
    """The first line of an error, cut before any query string, without URL userinfo and
    with control characters escaped: fit for messages that status and logs show."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return escape(hide_userinfo(text.split("?", 1)[0])[:200])
