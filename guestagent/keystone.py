"""Keystone v3 password login with token reuse, shared by the heat and zaqar sources and signals.

Built on guestagent.http like every other request: the same reply type, the same trust (system
store, certifi, `REQUESTS_CA_BUNDLE`, a source's `ca_certificate` or `insecure`), the same
deadline and size bounds. A token is kept until it is within `RENEW_BEFORE` of its expiry; a
401 from a service logs in once more and retries once (SPEC 2.4). The token reply is checked
for shape before any of it is used, and a failed login is not tried again before a backoff
(`delay_after`) has passed, so a Keystone that refuses us is not asked every poll.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from guestagent import http
from guestagent.errors import KeystoneError, TransportError
from guestagent.logs import escape

RENEW_BEFORE = 120.0  # seconds before expiry a token is renewed (keystoneauth's margin)
MAX_TOKEN_REPLY = 4 * 1024 * 1024  # a token reply with a large catalog is ~100 KiB
MAX_TOKEN_ID = 8192
LOGIN_BACKOFF_MAX = 300.0
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                  r"(Z|[+-]\d\d:?\d\d)?$")
_clients: dict[tuple, KeystoneClient] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class Credentials:
    """What a v3 password login needs (SPEC 2.4), and how to reach Keystone."""

    auth_url: str
    user_id: str
    password: str
    project_id: str
    region_name: str | None = None
    verify: bool | str = True
    timeout: float | None = None  # connect and per-read seconds; None: http's default

    @property
    def v3_url(self) -> str:
        url = self.auth_url.rstrip("/")
        return url if url.endswith("/v3") else url + "/v3"

    def cache_key(self) -> tuple:
        secret = hashlib.sha256(self.password.encode()).hexdigest()
        return (self.v3_url, self.user_id, self.project_id, self.region_name, secret,
                str(self.verify), self.timeout)


@dataclass(frozen=True)
class Token:
    """A checked token reply: the token, when it expires (epoch seconds), the endpoints."""

    id: str
    expires: float
    endpoints: tuple  # (service type, interface, region id, region name, url)


def delay_after(failures: int) -> float:
    """Seconds before the next login after `failures` failed ones in a row: 2, 4, 8 ... 300."""
    return min(LOGIN_BACKOFF_MAX, 2.0 ** max(1, failures))


class KeystoneClient:
    """One identity: its token, the endpoint catalog, and authenticated requests."""

    def __init__(self, creds: Credentials, clock: Callable[[], float] = time.time):
        self.creds = creds
        self.clock = clock
        self._token: Token | None = None
        self._endpoints: dict[tuple[str, str], str] = {}
        self._lock = threading.RLock()
        self._failures = 0
        self._next_login = 0.0
        self._last_error: KeystoneError | None = None

    def endpoint(self, service_type: str, interface: str = "public", *,
                 deadline: http.Deadline | None = None) -> str:
        """The catalog URL of `service_type` (filtered by region when one is set).

        Looked up once per client: endpoints do not move while the credentials stay the same.
        """
        key = (service_type, interface)
        with self._lock:
            if key not in self._endpoints:
                token = self._token if self._token is not None else self._login(deadline)
                self._endpoints[key] = _pick(token, service_type, interface, self.creds)
            return self._endpoints[key]

    def token(self) -> tuple[str, float]:
        """A valid token and its expiry (epoch seconds, this guest's clock): the one in hand,
        or a new login when it nears its end (the zaqar websocket authenticates with it)."""
        token = self._valid_token(self._deadline())
        return token.id, token.expires

    def request(self, method: str, url: str, *, headers: dict | None = None,
                data: bytes | None = None, json_body: Any = None,
                max_body: int = http.DEFAULT_MAX_BODY,
                deadline: http.Deadline | None = None) -> http.Reply:
        """An authenticated request; a 401 triggers one re-login and one retry."""
        headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        deadline = deadline or self._deadline()
        for attempt in (1, 2):
            token = self._valid_token(deadline)
            reply = http.request(method, url, headers={**headers, "X-Auth-Token": token.id},
                                 data=data, verify=self.creds.verify, timeout=self._timeout(),
                                 max_body=max_body, deadline=deadline)
            if reply.status_code != 401 or attempt == 2:
                return reply
            with self._lock:
                if self._token is token:
                    self._token = None  # revoked or expired early: log in again, once
        raise AssertionError("unreachable")

    # ---- login ---------------------------------------------------------------------------

    def _timeout(self) -> tuple[float, float]:
        t = self.creds.timeout
        return http.DEFAULT_TIMEOUT if t is None else (t, t)

    def _deadline(self) -> http.Deadline:
        return http.Deadline(sum(self._timeout()))

    def _valid_token(self, deadline: http.Deadline) -> Token:
        with self._lock:
            token = self._token
            if token is None or token.expires - self.clock() <= RENEW_BEFORE:
                token = self._login(deadline)
            return token

    def _login(self, deadline: http.Deadline | None) -> Token:
        """Log in (under the lock), or re-raise the last failure while its backoff lasts."""
        now = self.clock()
        if self._last_error is not None and now < self._next_login:
            # The same words as the failure itself: a source's error is logged when it changes.
            raise KeystoneError(self._last_error.reason, transient=self._last_error.transient)
        try:
            token = self._post_login(deadline or self._deadline())
        except KeystoneError as exc:
            self._failures += 1
            self._next_login = self.clock() + delay_after(self._failures)
            self._last_error = exc
            raise
        self._failures, self._last_error, self._token = 0, None, token
        return token

    def _post_login(self, deadline: http.Deadline) -> Token:
        creds = self.creds
        where = f"login at {http.redact_url(creds.v3_url)} as user {escape(creds.user_id)}"
        body = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"id": creds.user_id, "password": creds.password}}},
            "scope": {"project": {"id": creds.project_id}}}}
        try:
            reply = http.request("POST", creds.v3_url + "/auth/tokens",
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json"},
                                 data=json.dumps(body).encode(), verify=creds.verify,
                                 timeout=self._timeout(), max_body=MAX_TOKEN_REPLY,
                                 deadline=deadline)
        except TransportError as exc:
            raise KeystoneError(f"{where} failed: {exc}") from exc
        if reply.status_code not in (200, 201):
            refused = reply.status_code in (401, 403, 404)
            raise KeystoneError(f"{where} failed: HTTP {reply.status_code}"
                                f"{' (credentials refused)' if refused else ''}",
                                transient=not refused)
        try:
            return parse_token(reply, self.clock())
        except BadTokenReply as exc:
            raise KeystoneError(f"{where}: unusable token reply: {exc}") from None


class BadTokenReply(ValueError):
    """A login reply that cannot be used; the message names the first bad part."""


def parse_token(reply: http.Reply, now: float) -> Token:
    """The token in a login reply, every part checked; BadTokenReply naming the first bad one."""
    token_id = reply.headers.get("X-Subject-Token") or ""
    if not token_id or len(token_id) > MAX_TOKEN_ID or not (token_id.isascii()
                                                           and token_id.isprintable()):
        raise BadTokenReply("header X-Subject-Token missing or malformed")
    if len(reply.content) > MAX_TOKEN_REPLY:
        raise BadTokenReply(f"body larger than {MAX_TOKEN_REPLY} bytes")
    try:
        body = reply.json()
    except (ValueError, RecursionError):
        raise BadTokenReply("body is not JSON") from None
    token = _field(body, dict, "token", "reply")
    expires = _when(_field(token, str, "expires_at", "token"), "expires_at")
    issued = token.get("issued_at")
    if isinstance(issued, str):
        # Counted from our clock, which may be far from Keystone's before NTP has run.
        lifetime = expires - _when(issued, "issued_at")
        if lifetime <= 0:
            raise BadTokenReply("token.expires_at is not after token.issued_at")
        expires = now + lifetime
    endpoints = []
    for i, service in enumerate(_field(token, list, "catalog", "token", default=[])):
        where = f"token.catalog[{i}]"
        kind = _field(_object(service, where), str, "type", where)
        for j, end in enumerate(_field(service, list, "endpoints", where)):
            at = f"{where}.endpoints[{j}]"
            end = _object(end, at)
            region_id = _field(end, (str, type(None)), "region_id", at, default=None)
            region = _field(end, (str, type(None)), "region", at, default=None)
            endpoints.append((kind, _field(end, str, "interface", at), region_id, region,
                              _field(end, str, "url", at)))
    return Token(token_id, expires, tuple(endpoints))


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise BadTokenReply(f"{where} is not an object")
    return value


_MISSING = object()


def _field(obj: Any, kind, name: str, where: str, default: Any = _MISSING) -> Any:
    if not isinstance(obj, dict):
        raise BadTokenReply(f"{where} is not an object")
    value = obj.get(name, default)
    if value is _MISSING:
        raise BadTokenReply(f"{where}.{name} is missing")
    if not isinstance(value, kind):
        raise BadTokenReply(f"{where}.{name} has the wrong type ({type(value).__name__})")
    return value


def _when(text: str, name: str) -> float:
    """Epoch seconds of an ISO 8601 time as Keystone writes it (UTC when no offset)."""
    found = _ISO.match(text.strip())
    if not found:
        raise BadTokenReply(f"token.{name} is not a date: {escape(text[:40])!r}")
    y, mo, d, h, mi, s, frac, zone = found.groups()
    try:
        when = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                        int((frac or "0")[:6].ljust(6, "0")), tzinfo=timezone.utc)
    except ValueError:
        raise BadTokenReply(f"token.{name} is not a date: {escape(text[:40])!r}") from None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        digits = zone[1:].replace(":", "")
        when += sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return when.timestamp()


def _pick(token: Token, service_type: str, interface: str, creds: Credentials) -> str:
    """The endpoint URL for this service, interface and region; KeystoneError when none."""
    region = creds.region_name
    for kind, iface, region_id, region_name, url in token.endpoints:
        if kind != service_type or iface not in (interface, f"{interface}URL"):
            continue
        if region and region not in (region_id, region_name):
            continue
        websocket = service_type.endswith("-websocket")  # Zaqar's: ws:// or wss://
        usable = _is_ws_url(url) if websocket else http.is_http_url(url)
        if not usable:
            raise KeystoneError(f"catalog: the {interface} {service_type} endpoint is not an "
                                f"{'ws(s)' if websocket else 'http(s)'} URL: "
                                f"{escape(http.redact_url(url)[:200])}")
        return url.rstrip("/")
    raise KeystoneError(f"no {interface} {service_type} endpoint in the catalog (region "
                        f"{escape(region or 'any')})")


def _is_ws_url(url: str) -> bool:
    """A well-formed ws:// or wss:// URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return parts.scheme in ("ws", "wss") and bool(parts.hostname) and \
            (parts.port is None or parts.port > 0)
    except ValueError:
        return False


def client(creds: Credentials) -> KeystoneClient:
    """The shared client for these credentials, so the token is reused across polls."""
    key = creds.cache_key()
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = KeystoneClient(creds)
        return found
