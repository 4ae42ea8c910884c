"""The zaqar source's websocket push (zaqar_push.py) against a loopback websocket server.

The e2e tier proves push against the real Zaqar (tests/e2e/test_agent_push.py); here the
cases the real one cannot be made to show on cue: the token nearing expiry (re-authenticated
on the open socket, with a fresh token), Zaqar closing with 4003 (reconnect at once), no
websocket endpoint in the catalog (polling only), use_websockets false. Keystone is the fake
cloud's, with short-lived tokens.
"""

from __future__ import annotations

import threading
import time

import pytest

from guestagent.collectors import build, zaqar_push
from tests.support.wait import wait_until
from tests.support.wsserver import ZaqarWebsocket


@pytest.fixture
def wsserver():
    server = ZaqarWebsocket()
    yield server
    server.shutdown()


class Events:
    """What the subscription reported, in order, with a way to wait for one."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.cond = threading.Condition()

    def __call__(self, kind: str) -> None:
        with self.cond:
            self.seen.append(kind)
            self.cond.notify_all()

    def wait_for(self, kind: str, count: int = 1, timeout: float = 10) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.seen.count(kind) >= count, timeout), self.seen


def subscription(cloud, url: str | None) -> tuple[zaqar_push.Subscription, Events]:
    cloud.add_user("agent", "zaqar-pw")
    collector = build("zaqar", {"auth_url": cloud.auth_url, "user_id": "agent",
                                "password": "zaqar-pw", "project_id": cloud.project_id,
                                "queue_id": "meta-q"})
    events = Events()
    return zaqar_push.Subscription(collector.creds, "meta-q", collector.client_id, events,
                                   url=url), events


def test_push_wakes_and_a_drop_is_reported(fakecloud, wsserver):
    sub, events = subscription(fakecloud, wsserver.url)
    sub.start()
    try:
        events.wait_for("connected")
        assert sub.live
        wsserver.notify({"deployments": []})
        events.wait_for("message")
        wsserver.drop_all()  # no close frame: the connection just ends
        events.wait_for("lost")
        assert not sub.live
    finally:
        sub.stop()
    assert events.seen[:3] == ["connected", "message", "lost"]


def test_token_is_renewed_on_the_open_socket_before_it_expires(fakecloud, wsserver):
    # tokens that live 3 s are renewed halfway: a renewal every 1.5 s or so
    fakecloud.token_lifetime = 3.0
    sub, events = subscription(fakecloud, wsserver.url)
    sub.start()
    try:
        events.wait_for("connected")
        started = time.monotonic()
        wait_until(lambda: len(wsserver.tokens) >= 3, timeout=15,
                   what="two re-authentications")
        # paced by the token's life (two halves of 3 s), not a login per wake-up
        assert time.monotonic() - started >= 2.0
        assert len(wsserver.connections) == 1  # the same connection all along
        assert len(set(wsserver.tokens)) == len(wsserver.tokens)  # a fresh token each time
        assert events.seen == ["connected"] and sub.live
    finally:
        sub.stop()


def test_close_4003_reconnects_at_once(fakecloud, wsserver, monkeypatch):
    monkeypatch.setattr(zaqar_push, "QUICK_CLOSE", 0.0)  # this connection counts as lived
    sub, events = subscription(fakecloud, wsserver.url)
    sub.start()
    try:
        events.wait_for("connected")
        wsserver.close_all(zaqar_push.CLOSE_AUTH_EXPIRED, "Authentication expired.")
        events.wait_for("lost")
        # no backoff wait before the new login and subscription
        events.wait_for("connected", count=2, timeout=zaqar_push.BACKOFF_FIRST * 0.7)
        assert len(wsserver.connections) == 2 and len(wsserver.tokens) == 2
    finally:
        sub.stop()


def test_close_4003_right_after_connecting_backs_off(fakecloud, wsserver):
    sub, events = subscription(fakecloud, wsserver.url)
    sub.start()
    try:
        events.wait_for("connected")
        lost_at = time.monotonic()
        wsserver.close_all(zaqar_push.CLOSE_AUTH_EXPIRED, "Authentication expired.")
        events.wait_for("connected", count=2, timeout=5)
        # not a tight loop against a server that keeps closing: the first backoff step
        assert time.monotonic() - lost_at >= zaqar_push.BACKOFF_FIRST * 0.75
    finally:
        sub.stop()


def test_no_websocket_endpoint_means_polling_only(fakecloud):
    sub, events = subscription(fakecloud, None)  # the fake catalog has no messaging-websocket
    sub.start()
    sub._thread.join(10)
    assert not sub._thread.is_alive() and not sub.live and events.seen == []


def test_refused_credentials_end_the_subscription(fakecloud, wsserver):
    """The stack's user deleted with the stack: no reconnect loop, one login, polling only."""
    sub, events = subscription(fakecloud, wsserver.url)
    fakecloud.add_user("agent", "another-pw")
    sub.start()
    sub._thread.join(10)
    assert not sub._thread.is_alive() and not sub.live and events.seen == []
    assert sum(r.path.endswith("/auth/tokens") for r in fakecloud.requests) == 1


def test_collector_contract(fakecloud, wsserver):
    fakecloud.add_user("agent", "zaqar-pw")
    options = {"auth_url": fakecloud.auth_url, "user_id": "agent", "password": "zaqar-pw",
               "project_id": fakecloud.project_id, "queue_id": "meta-q"}
    off = build("zaqar", {**options, "use_websockets": "false"})
    assert off.on_push(lambda: None) is False and not off.pushing()

    collector = build("zaqar", {**options, "websocket_url": wsserver.url})
    woken = threading.Event()
    assert collector.on_push(woken.set) is True
    try:
        wait_until(collector.pushing, timeout=10, what="the subscription")
        woken.clear()
        wsserver.notify({"deployments": []})
        assert woken.wait(5)
    finally:
        collector.close()
    assert not collector.pushing()
