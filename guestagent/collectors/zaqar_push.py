"""Push for the zaqar source: a subscription over Zaqar's websocket API to the metadata queue.

Heat posts the server's whole metadata to its queue on every change; subscribed over the
websocket (as the same stack user as the polling source), Zaqar pushes each post to us at
once. A push carries no claim, so it is only a wake-up: the source then claims the queue as it
does when polling (zaqar.py), which keeps its guarantees (the newest snapshot is held until
its deployments ran; nothing is lost or run twice). Hence the events a `Subscription` reports,
each meaning "poll the queue now": `connected` (a post may have come before the subscription
existed), `message` (a push), `lost` (the connection dropped: poll until it is back).

One daemon thread per subscription, with websocket-client (a small, maintained, pure-Python
client with a blocking API: a thread with a timeout is all the agent needs, no event loop).
It is imported only when push starts. The thread re-authenticates on the open socket before
the token expires (Zaqar closes the connection with code 4003 when it does), pings to find a
dead peer, and reconnects with exponential backoff after a drop.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any, Callable

from guestagent import keystone
from guestagent.errors import GuestAgentError, KeystoneError, TransportError

log = logging.getLogger(__name__)

SUBSCRIPTION_TTL = 86400  # Zaqar drops it with the connection; reconnect before it ends
REAUTH_MARGIN = 60.0  # seconds before the token's expiry to authenticate again (keystoneauth
# logs in anew within 120 s of expiry, so the token asked for then is a fresh one)
PING_INTERVAL = 20.0
SILENCE_LIMIT = 3 * PING_INTERVAL  # no frame at all (not even a pong) this long: peer is dead
CONNECT_TIMEOUT = 10.0
REPLY_TIMEOUT = 10.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 60.0
STABLE_AFTER = 30.0  # a connection that lived this long starts the backoff over
CLOSE_AUTH_EXPIRED = 4003  # Zaqar's close code when the token it was given expired
QUICK_CLOSE = 1.0  # a 4003 sooner than this after connecting is retried with backoff

EVENTS = ("connected", "message", "lost")


class PushFailed(GuestAgentError):
    """The websocket subscription failed or ended; `retry_now` when a reconnect should not wait."""

    def __init__(self, queue: str, reason: str, retry_now: bool = False):
        super().__init__(f"source zaqar: push for queue {queue}: {reason}")
        self.reason = reason
        self.retry_now = retry_now


class NoEndpoint(PushFailed):
    """The catalog has no messaging-websocket endpoint: push is not offered here."""


class Subscription:
    """Keeps one websocket subscription to `queue_id` alive in a thread; reports EVENTS."""

    def __init__(self, creds: keystone.Credentials, queue_id: str, client_id: str,
                 on_event: Callable[[str], None], url: str | None = None) -> None:
        self.creds = creds
        self.queue_id = queue_id
        self.client_id = client_id
        self.url = url  # None: the catalog's messaging-websocket endpoint
        self.on_event = on_event
        self.counts = {kind: 0 for kind in EVENTS}  # for status and tests
        self._live = threading.Event()
        self._stop = threading.Event()
        self._ws: Any = None
        self._thread: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """True while subscribed: every post to the queue is pushed to us."""
        return self._live.is_set()

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"zaqar-push-{self.queue_id}")
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the subscription and the thread (closing the socket wakes a blocked read)."""
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.abort()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the thread ---------------------------------------------------------------------------
    def _emit(self, kind: str) -> None:
        log.debug("zaqar push: queue %s: %s", self.queue_id, kind)
        self.counts[kind] += 1
        try:
            self.on_event(kind)
        except Exception:  # the agent's callback must not end the subscription
            log.exception("zaqar push: the %s callback failed", kind)

    def _run(self) -> None:
        import websocket

        delay, last_reason = BACKOFF_FIRST, None
        while not self._stop.is_set():
            started = time.monotonic()
            retry_now = False
            try:
                self._session(websocket)
                reason = "closed"
            except NoEndpoint as exc:
                log.info("%s; polling only", exc)
                return
            except PushFailed as exc:
                reason, retry_now = exc.reason, exc.retry_now
            except KeystoneError as exc:
                if not exc.transient:  # the stack's user is gone with the stack: so are pushes
                    log.warning("zaqar push: queue %s: %s; polling only", self.queue_id,
                                exc.reason)
                    return
                reason = exc.reason
            except TransportError as exc:
                reason = str(exc)
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            finally:
                self._ws = None
            was_live = self._live.is_set()
            self._live.clear()
            if self._stop.is_set():
                return
            if was_live:
                # Falls back to polling at once: the caller polls on "lost".
                log.warning("zaqar push: queue %s: connection lost (%s); polling until it is "
                            "back", self.queue_id, reason)
                self._emit("lost")
            elif reason != last_reason:
                log.warning("zaqar push: queue %s: cannot subscribe (%s); polling, retrying",
                            self.queue_id, reason)
            last_reason = reason
            lasted = time.monotonic() - started
            retry_now = retry_now and lasted > QUICK_CLOSE  # closed at once again: back off
            if lasted > STABLE_AFTER or retry_now:
                delay = BACKOFF_FIRST
            if not retry_now:
                # Jittered so that many guests do not come back in step after a Zaqar restart.
                if self._stop.wait(delay * random.uniform(0.75, 1.25)):
                    return
                delay = min(delay * 2, BACKOFF_MAX)

    def _session(self, websocket: Any) -> None:
        """Connect, authenticate, subscribe, then read pushes until something ends it."""
        ks = keystone.client(self.creds)
        url = self.url
        if url is None:
            try:
                url = ks.endpoint("messaging-websocket")
            except KeystoneError as exc:
                if "endpoint in the catalog" in exc.reason:
                    raise NoEndpoint(self.queue_id, exc.reason) from exc
                raise
        token, expires = ks.token()
        ws = websocket.create_connection(url, timeout=CONNECT_TIMEOUT)
        self._ws = ws
        try:
            if self._stop.is_set():
                return
            self._call(ws, websocket, "authenticate", {}, {"X-Auth-Token": token}, (200,))
            self._call(ws, websocket, "subscription_create",
                       {"queue_name": self.queue_id, "ttl": SUBSCRIPTION_TTL}, {}, (201,))
            renew_at = time.time() + SUBSCRIPTION_TTL - PING_INTERVAL
            self._live.set()
            log.info("zaqar push: subscribed to queue %s at %s", self.queue_id, url)
            self._emit("connected")
            self._read(ws, websocket, ks, expires, renew_at)
        finally:
            ws.abort()
            ws.close(timeout=0.5)

    def _read(self, ws: Any, websocket: Any, ks: keystone.KeystoneClient, expires: float,
              renew_at: float) -> None:
        heard = ping_at = time.monotonic()
        reauth_at = _reauth_time(expires)
        while not self._stop.is_set():
            now = time.time()
            if now >= renew_at:
                return  # the subscription's ttl ends: a new connection makes a new one
            if now >= reauth_at:
                token, expires = ks.token()
                reauth_at = _reauth_time(expires)
                # the reply arrives among the pushes and is checked in _frame
                self._send(ws, "authenticate", {}, {"X-Auth-Token": token})
            mono = time.monotonic()
            if mono - heard > SILENCE_LIMIT:
                raise PushFailed(self.queue_id, f"no frame from Zaqar for {SILENCE_LIMIT:.0f} s")
            if mono >= ping_at:
                ws.ping()
                ping_at = mono + PING_INTERVAL
            wake_at = min(reauth_at - now, renew_at - now, ping_at - mono)
            ws.settimeout(max(0.05, wake_at))
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            heard = time.monotonic()
            self._frame(opcode, data, websocket)

    def _frame(self, opcode: int, data: bytes, websocket: Any) -> None:
        abnf = websocket.ABNF
        if opcode == abnf.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            why = data[2:].decode("utf-8", "replace")
            raise PushFailed(self.queue_id, f"closed by Zaqar (code {code} {why})".rstrip(),
                             retry_now=code == CLOSE_AUTH_EXPIRED)
        if opcode not in (abnf.OPCODE_TEXT, abnf.OPCODE_BINARY):
            return  # pong, ping (answered by the library)
        frame = _decode(data)
        if frame.get("Message_Type") == "Notification":
            self._emit("message")
            return
        status = (frame.get("headers") or {}).get("status")
        action = (frame.get("request") or {}).get("action")
        if action == "authenticate" and status != 200:
            raise PushFailed(self.queue_id, f"re-authentication refused (status {status})")

    def _send(self, ws: Any, action: str, body: dict, headers: dict) -> None:
        ws.send(json.dumps({"action": action, "body": body,
                            "headers": {"Client-ID": self.client_id,
                                        "X-Project-ID": self.creds.project_id, **headers}}))

    def _call(self, ws: Any, websocket: Any, action: str, body: dict, headers: dict,
              ok: tuple[int, ...]) -> dict:
        """Send one request and wait for its reply; a push meanwhile counts (we poll on
        `connected` anyway)."""
        self._send(ws, action, body, headers)
        ws.settimeout(REPLY_TIMEOUT)
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._frame(opcode, data, websocket)
            if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                continue
            frame = _decode(data)
            if (frame.get("request") or {}).get("action") != action:
                continue
            status = (frame.get("headers") or {}).get("status")
            if status not in ok:
                raise PushFailed(self.queue_id, f"{action} answered {status}: "
                                                f"{json.dumps(frame.get('body'))[:200]}")
            return frame


def _reauth_time(expires: float) -> float:
    """When to authenticate again: REAUTH_MARGIN before `expires`, or halfway there for a
    token that lives less than twice that (no login storm with short-lived tokens)."""
    left = expires - time.time()
    return expires - min(REAUTH_MARGIN, left / 2)


def _decode(data: bytes) -> dict:
    try:
        frame = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except ValueError:
        return {}  # not ours to understand (MessagePack is only sent to binary subscribers)
    return frame if isinstance(frame, dict) else {}

