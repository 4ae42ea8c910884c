"""The one HTTP client: `request()` for every request the agent makes itself, timeouts always set.

A direct request (the normal case on an instance) goes through the standard library's
`http.client` on a connection kept alive per host and thread: importing it costs about 15 ms
and 3 MiB, and a request well under a millisecond of CPU, where `requests` costs about 60 ms
and 8 MiB to import and several ms per request (bench/agent.py measures both). That keeps a
`--once` with nothing to do, and every idle poll of the daemon, cheap.

When the environment configures a proxy or a netrc file, `requests` carries the request
instead: proxy rules (no_proxy, CONNECT tunnels, proxy credentials) are its trade, not ours.
`session()` is the `requests` session keystoneauth1 drives for the Heat and Zaqar APIs.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urljoin, urlsplit

from guestagent.errors import TransportError

if TYPE_CHECKING:
    import ssl

    import requests

# (connect, read) seconds; every request the agent makes has a bound.
DEFAULT_TIMEOUT = (10.0, 60.0)
USER_AGENT = "guestagent"
# Replies larger than this are cut here (the caller sees more than it allows and refuses them).
DEFAULT_MAX_BODY = 64 * 1024 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}

_local = threading.local()
_contexts: dict[str, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()
_via_requests: bool | None = None

# urllib3 logs every request line at DEBUG, query string included: that is where pre-signed
# URLs (CFN signature, Swift temp_url_sig) carry their secret. Never let it through.
logging.getLogger("urllib3").setLevel(logging.WARNING)


@dataclass
class Reply:
    """One HTTP reply, read in full. `headers.get(name)` ignores the name's case."""

    status_code: int
    headers: Any
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers.get("Content-Type")), "replace")

    def json(self) -> Any:
        """The body as JSON, depth- and size-bounded (jsondoc); ValueError when it is not."""
        from guestagent import jsondoc

        return jsondoc.loads(self.content)


def request(method: str, url: str, *, headers: Mapping[str, str] | None = None,
            data: bytes | None = None, verify: bool | str = True,
            timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
            max_body: int = DEFAULT_MAX_BODY) -> Reply:
    """Send one request and read its reply (at most `max_body` + 1 bytes of body); GET and
    HEAD follow redirects. TransportError when no reply came: refused, reset, timed out, TLS."""
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    send = _through_requests if _environment_matters() else _direct
    for _ in range(MAX_REDIRECTS + 1):
        reply = send(method, url, dict(headers or {}), data, verify, (connect, read), max_body)
        location = reply.headers.get("Location")
        if method not in ("GET", "HEAD") or reply.status_code not in _REDIRECTS or not location:
            return reply
        url = urljoin(url, location)
    raise TransportError("TooManyRedirects", f"more than {MAX_REDIRECTS}")


def session() -> requests.Session:
    """This thread's `requests` session (keystoneauth1's transport), kept alive between polls."""
    sess = getattr(_local, "session", None)
    if sess is None:
        import requests

        sess = requests.Session()
        sess.headers["User-Agent"] = USER_AGENT
        # Without proxy or netrc settings, skip requests' per-request scan of the environment.
        sess.trust_env = _environment_matters()
        _local.session = sess
    return sess


def redact_url(url: str) -> str:
    """A URL fit for logs: no query string (pre-signed URLs carry their signature there)."""
    return url.split("?", 1)[0] + ("?<redacted>" if "?" in url else "")


# ---- direct: http.client -------------------------------------------------------------------

def _direct(method: str, url: str, headers: dict, data: bytes | None, verify: bool | str,
            timeout: tuple[float, float], max_body: int) -> Reply:
    import http.client

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError("InvalidURL", f"not an http(s) URL: {redact_url(url)}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
    for attempt in (1, 2):
        conn, reused = _connection(parts, verify, timeout[0])
        phase = "connect"
        try:
            if conn.sock is None:
                conn.connect()
            phase = "read"
            conn.sock.settimeout(timeout[1])
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
            # A known length is read whole (a cut body raises); otherwise up to the limit.
            known = resp.length is not None and resp.length <= max_body
            content = resp.read() if known else resp.read(max_body + 1)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
            _drop(parts, verify)
            if reused and attempt == 1:
                continue  # the server closed the idle kept-alive connection: open a new one
            raise _transport_error(exc, phase) from exc
        except (OSError, http.client.HTTPException) as exc:
            _drop(parts, verify)
            raise _transport_error(exc, phase) from exc
        if resp.will_close or not resp.isclosed():
            _drop(parts, verify)  # the server ends it, or a body over max_body is left unread
        return Reply(resp.status, resp.headers, content, url)
    raise AssertionError("unreachable")


def _connection(parts, verify: bool | str, connect_timeout: float):
    """(connection, reused) for this host, thread and TLS setting."""
    import http.client

    pool = getattr(_local, "connections", None)
    if pool is None:
        pool = _local.connections = {}
    key = _pool_key(parts, verify)
    conn = pool.get(key)
    if conn is not None and conn.sock is not None and not _readable(conn.sock):
        conn.timeout = connect_timeout
        return conn, True
    if conn is not None:
        conn.close()  # closed by the server while idle (readable means EOF or junk)
    port = parts.port
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, port, timeout=connect_timeout,
                                           context=_tls_context(verify))
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=connect_timeout)
    pool[key] = conn
    return conn, False


def _pool_key(parts, verify: bool | str) -> tuple:
    return (parts.scheme, parts.hostname, parts.port, str(verify))


def _drop(parts, verify: bool | str) -> None:
    conn = getattr(_local, "connections", {}).pop(_pool_key(parts, verify), None)
    if conn is not None:
        conn.close()


def _readable(sock) -> bool:
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """A cached client context: verify=True trusts the system store and, where installed,
    certifi's bundle (what `requests` trusted); a path trusts that file or directory only."""
    import ssl

    key = str(verify)
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


def _transport_error(exc: BaseException, phase: str) -> TransportError:
    import http.client
    import socket
    import ssl

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
    return TransportError(kind, str(detail)[:200])


def _charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


# ---- through requests: when proxies or netrc apply -----------------------------------------

def _environment_matters() -> bool:
    """True when the environment sets a proxy or a netrc file (checked once per process)."""
    global _via_requests
    if _via_requests is None:
        proxies = any(key.lower().endswith("_proxy") and key.lower() != "no_proxy" and value
                      for key, value in os.environ.items())
        _via_requests = bool(proxies or os.environ.get("NETRC")
                             or os.path.exists(os.path.expanduser("~/.netrc")))
    return _via_requests


def _through_requests(method: str, url: str, headers: dict, data: bytes | None,
                      verify: bool | str, timeout: tuple[float, float], max_body: int) -> Reply:
    import requests

    try:
        resp = session().request(method, url, headers=headers, data=data, verify=verify,
                                 timeout=timeout, allow_redirects=False, stream=True)
        with resp:
            content = resp.raw.read(max_body + 1, decode_content=True)
    except requests.RequestException as exc:
        raise TransportError(type(exc).__name__, brief_error(exc)) from exc
    except OSError as exc:  # a CA bundle path that does not exist, raised before any request
        raise TransportError("SSLError", brief_error(exc)) from exc
    return Reply(resp.status_code, resp.headers, content, url)


def brief_error(exc: BaseException) -> str:
    """The first line of an HTTP library's error, cut before any query string: requests and
    keystoneauth1 put whole URLs (a pre-signed one's signature included) in their messages."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split("?", 1)[0][:200]
