"""`zaqar` (ZAQAR_MESSAGE): Heat posts the whole metadata to a Zaqar v2 queue on every change.

Non-destructive: each poll claims the queue's messages; the newest one is the current
snapshot and stays claimed ("held") until the agent calls `release()` once the deployments of
that snapshot have finished; older ones are superseded (Heat sends the full metadata each
time) and deleted at once. If the agent dies before releasing, the claim expires and the same
snapshot comes back on the next start.

Push (daemon only): `on_push(callback)` subscribes to the queue over Zaqar's websocket API
(zaqar_push.py) and calls `callback()` whenever the queue may hold something new; the agent then
polls this source at once. While `pushing()` is True a poll is only a safety net. Option
`use_websockets` (os-collect-config's name): unset = push when the catalog offers a
`messaging-websocket` endpoint, false = never; `websocket_url` overrides the catalog.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

from guestagent import keystone
from guestagent.collectors.base import NOT_MODIFIED, Collected, Collector
from guestagent.collectors.openstack import credentials, login_failure, truthy
from guestagent.collectors.replies import MAX_BODY, describe, json_reply
from guestagent.errors import KeystoneError, SourceUnavailable, TransportError
from guestagent.logs import escape

log = logging.getLogger(__name__)

# The claim only gives us the right to delete the held message: keep it short (Zaqar's minimum)
# so that after a restart the held snapshot is claimable again within a minute. An expired
# claim on the held message is simply renewed by the next poll.
CLAIM_TTL = 60
CLAIM_GRACE = 600  # extra life Zaqar gives the message beyond the claim
CLAIM_LIMIT = 20  # Zaqar's default maximum per claim
MAX_ROUNDS = 10


@dataclass
class _Held:
    id: str
    claim_id: str


@dataclass
class Zaqar(Collector):
    creds: keystone.Credentials
    queue_id: str
    client_id: str
    claim_ttl: int = CLAIM_TTL
    name: str = "zaqar"
    use_websockets: bool | None = None  # None: when the catalog has the endpoint
    websocket_url: str | None = None
    _held: _Held | None = field(default=None, repr=False)
    _superseded: set = field(default_factory=set, repr=False)
    _push: object = field(default=None, repr=False)  # zaqar_push.Subscription once started
    _listeners: list = field(default_factory=list, repr=False)

    def collect(self, previous=None):
        """The newest metadata snapshot in the queue, or NOT_MODIFIED when none is new."""
        claimed = []
        for _ in range(MAX_ROUNDS):
            batch = self._claim()
            claimed.extend(batch)
            if len(batch) < CLAIM_LIMIT:
                break
        fresh = [m for m in claimed if m["id"] not in self._superseded]
        for stale in (m for m in claimed if m["id"] in self._superseded):
            self._delete(stale["id"], stale["claim_id"])  # its earlier delete had failed
        if not fresh:
            if previous is None and self._held is None:
                raise SourceUnavailable(self.name, f"queue {self.queue_id} holds no unclaimed "
                                                   "metadata message (yet)")
            return NOT_MODIFIED
        newest = fresh[-1]
        if self._held is not None and newest["id"] == self._held.id:
            self._held.claim_id = newest["claim_id"]  # our claim had expired; renewed
            for older in fresh[:-1]:
                self._supersede(older["id"], older["claim_id"])
            return NOT_MODIFIED
        body = newest.get("body")
        if not isinstance(body, dict):
            self._supersede(newest["id"], newest["claim_id"])
            raise SourceUnavailable(self.name, f"queue {self.queue_id}: message {escape(newest['id'][:100])} "
                                               "does not hold a JSON object; dropped")
        for older in fresh[:-1]:
            self._supersede(older["id"], older["claim_id"])
        if self._held is not None:
            self._supersede(self._held.id, self._held.claim_id)
        self._held = _Held(newest["id"], newest["claim_id"])
        return Collected(body)

    def release(self) -> None:
        """The agent has finished the deployments of the last snapshot: delete its message."""
        if self._held is not None:
            self._delete(self._held.id, self._held.claim_id)
            self._held = None

    # ---- push ----------------------------------------------------------------------------------

    def on_push(self, callback: Callable[[], None]) -> bool:
        """Call `callback()` (from the subscription's thread; keep it quick) whenever this source
        should be polled now: a post was pushed, the subscription (re)started, or it was lost.
        Starts the subscription on first use. False when push is off here: `use_websockets`
        is false or the websocket client library is not installed."""
        if self.use_websockets is False:
            return False
        self._listeners.append(callback)
        if self._push is None:
            import importlib.util

            if importlib.util.find_spec("websocket") is None:  # extra guestagent[zaqar-push]
                log.warning("zaqar: push needs the websocket-client package "
                            "(guestagent[zaqar-push]); polling only")
                return False
            from guestagent.collectors.zaqar_push import Subscription

            self._push = Subscription(self.creds, self.queue_id, self.client_id,
                                      self._pushed, url=self.websocket_url)
            self._push.start()
        return True

    def pushing(self) -> bool:
        """True while the subscription is live: every change is pushed, so polls are only a
        safety net (one per polling_interval is plenty)."""
        return self._push is not None and self._push.live

    def close(self) -> None:
        """End the subscription (the collector is dropped or the agent stops)."""
        if self._push is not None:
            self._push.stop()

    def _pushed(self, event: str) -> None:
        for callback in list(self._listeners):
            callback()

    # ---- Zaqar v2 requests ------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs):
        headers = {"Client-ID": self.client_id, "X-Project-Id": self.creds.project_id,
                   "Accept": "application/json"}
        try:
            ks = keystone.client(self.creds)
            url = f"{ks.endpoint('messaging')}/v2/queues/{quote(self.queue_id, safe='')}/{path}"
            return ks.request(method, url, headers=headers, max_body=MAX_BODY, **kwargs)
        except KeystoneError as exc:
            raise login_failure(self.name, exc) from exc
        except TransportError as exc:
            raise SourceUnavailable(self.name, f"Zaqar unreachable: {exc}") from exc

    def _claim(self) -> list[dict]:
        resp = self._request("POST", f"claims?limit={CLAIM_LIMIT}",
                             json_body={"ttl": self.claim_ttl, "grace": CLAIM_GRACE})
        if resp.status_code == 204:
            return []
        what = describe("POST", resp.url)
        body = json_reply(self.name, what, resp)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            raise SourceUnavailable(self.name, f"{what}: reply has no \"messages\" list")
        claim_id = resp.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
        out = []
        for msg in messages:
            if not isinstance(msg, dict) or not isinstance(msg.get("id"), str) or not msg["id"]:
                raise SourceUnavailable(self.name, f"{what}: a message has no id")
            href_claim = str(msg.get("href", "")).partition("claim_id=")[2]
            out.append({"id": str(msg["id"]), "body": msg.get("body"),
                        "claim_id": href_claim or claim_id})
        return out

    def _supersede(self, message_id: str, claim_id: str) -> None:
        self._superseded.add(message_id)
        self._delete(message_id, claim_id)

    def _delete(self, message_id: str, claim_id: str) -> None:
        resp = self._request("DELETE", f"messages/{quote(message_id, safe='')}"
                                       f"?claim_id={quote(claim_id, safe='')}")
        if resp.status_code not in (204, 404):
            # Not fatal: the claim expires and the message comes back to be deleted again.
            log.warning("zaqar: could not delete message %s from queue %s: HTTP %s",
                        message_id, self.queue_id, resp.status_code)
        else:
            self._superseded.discard(message_id)


def build(options: dict) -> Zaqar:
    creds = credentials("zaqar", options, extra=("queue_id",))
    client_id = options.get("client_id") or str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"guestagent:{creds.user_id}:{options['queue_id']}"))
    websockets = options.get("use_websockets")
    return Zaqar(creds, str(options["queue_id"]), str(client_id),
                 claim_ttl=int(options.get("claim_ttl") or CLAIM_TTL),
                 use_websockets=None if websockets in (None, "") else truthy(websockets),
                 websocket_url=options.get("websocket_url") or None)
