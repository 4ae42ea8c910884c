"""Peers that never finish: every source and signal transport gives up at its overall
deadline (connect + send + whole reply) against tests/badpeer.py, however the peer stalls;
a huge body, a redirect to another host and a wrong content type are refused or handled."""

from __future__ import annotations

import pytest

from guestagent import http, keystone, signals
from guestagent.collectors import build
from guestagent.errors import SignalFailed, SourceUnavailable
from tests.badpeer import BadPeer, elapsed

TIMEOUT = 0.5  # a source's `timeout`: per read; the whole exchange gets twice that
SLACK = 1.0  # CPU is shared: allowed lateness over the deadline


def _source(kind: str, url: str):
    keystone_options = {"auth_url": url + "/v3", "user_id": "u", "password": "p",
                        "project_id": "pr", "timeout": TIMEOUT}
    options = {
        "request": {"metadata_url": url + "/metadata", "timeout": TIMEOUT},
        "cfn": {"metadata_url": url + "/v1/", "stack_name": "st", "access_key_id": "a",
                "secret_access_key": "s", "path": "server.Metadata", "timeout": TIMEOUT},
        "ec2": {"metadata_url": url + "/latest/meta-data/", "timeout": TIMEOUT,
                "config_drive": "false"},
        "heat": {**keystone_options, "stack_id": "st/uuid", "resource_name": "server"},
        "zaqar": {**keystone_options, "queue_id": "q"},
    }[kind]
    return build(kind, options)


@pytest.mark.parametrize("mode", ["trickle", "trickle_headers"])
@pytest.mark.parametrize("kind", ["request", "cfn", "ec2", "heat", "zaqar"])
def test_a_trickling_peer_cannot_hold_a_poll_past_the_deadline(kind, mode):
    with BadPeer(mode, interval=0.1) as peer:
        took, err = elapsed(lambda: _source(kind, peer.url).collect(None))
    assert isinstance(err, SourceUnavailable), err
    assert "deadline" in str(err)
    assert 2 * TIMEOUT * 0.9 <= took <= 2 * TIMEOUT + SLACK
    assert peer.sent >= 5  # it did keep sending: only the overall deadline could end it


def test_silence_after_the_headers_ends_at_the_read_timeout():
    with BadPeer("hang_after_headers") as peer:
        took, err = elapsed(lambda: _source("request", peer.url).collect(None))
    assert isinstance(err, SourceUnavailable) and "ReadTimeout" in str(err)
    assert took <= TIMEOUT + SLACK


def test_a_huge_body_is_refused_at_the_size_limit():
    with BadPeer("huge") as peer:
        source = build("request", {"metadata_url": peer.url, "timeout": 10})
        _, err = elapsed(lambda: source.collect(None))
    assert isinstance(err, SourceUnavailable) and "larger than" in str(err), err
    assert peer.sent < 48 * 1024 * 1024  # 32 MiB read, then the connection dropped


def test_a_wrong_content_type_is_a_source_error():
    with BadPeer("wrong_type") as peer:
        _, err = elapsed(lambda: _source("request", peer.url).collect(None))
    assert isinstance(err, SourceUnavailable) and "not JSON (text/html)" in str(err)


def test_redirect_to_another_host_drops_credentials():
    with BadPeer("ok") as far, BadPeer("redirect", location=far.url + "/landed") as near:
        base = near.url.replace("http://", "http://user:basic-pw@")
        reply = http.request("GET", base + "/start",
                             headers={"X-Auth-Token": "tok-123", "Accept": "application/json"})
        assert reply.json() == {"ok": True}
    assert near.requests[0].headers["x-auth-token"] == "tok-123"
    assert near.requests[0].headers["authorization"].startswith("Basic ")
    landed = far.requests[0]
    assert landed.target == "/landed" and landed.headers["accept"] == "application/json"
    assert "x-auth-token" not in landed.headers and "authorization" not in landed.headers


def test_keystone_requests_never_carry_the_token_to_another_host(fakecloud):
    fakecloud.add_user("agent", "agent-pw")
    creds = keystone.Credentials(fakecloud.auth_url, "agent", "agent-pw", fakecloud.project_id)
    client = keystone.KeystoneClient(creds)
    with BadPeer("ok") as far, BadPeer("redirect", location=far.url + "/x") as near:
        assert client.request("GET", near.url + "/metadata").json() == {"ok": True}
    assert near.requests[0].headers["x-auth-token"]
    assert "x-auth-token" not in far.requests[0].headers


# ---- signals -------------------------------------------------------------------------------

def _target(transport: str, url: str) -> signals.Target:
    if transport in ("CFN_SIGNAL", "TEMP_URL_SIGNAL"):
        inputs = {"deploy_signal_id": url + "/signal?sig=1"}
    else:
        inputs = {"deploy_auth_url": url + "/v3", "deploy_user_id": "u", "deploy_password": "p",
                  "deploy_project_id": "pr", "deploy_stack_id": "s/1",
                  "deploy_resource_name": "r", "deploy_queue_id": "q"}
    return signals.target_for({"deploy_signal_transport": transport, **inputs})


@pytest.mark.parametrize("mode", ["trickle", "trickle_headers", "hang"])
@pytest.mark.parametrize("transport", ["CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL",
                                       "ZAQAR_SIGNAL"])
def test_a_signal_attempt_ends_at_its_deadline(transport, mode):
    with BadPeer(mode, interval=0.1) as peer:
        target = _target(transport, peer.url)
        took, err = elapsed(lambda: signals.send(target, b"{}", deadline=1.0))
    assert isinstance(err, SignalFailed) and err.transient, err
    assert "Timeout" in str(err)
    assert took <= 1.0 + SLACK


def test_in_pass_attempts_are_bounded_in_total():
    slept = []
    with BadPeer("hang") as peer:
        target = _target("TEMP_URL_SIGNAL", peer.url)
        took, err = elapsed(lambda: signals.deliver(target, b"{}", attempts=3, budget=1.5,
                                                    sleep=slept.append))
    assert isinstance(err, SignalFailed) and err.transient
    assert 1.4 <= took <= 1.5 + SLACK
    assert sum(slept) <= 1.5


def test_quick_retries_still_happen_within_the_budget(fakecloud):
    fakecloud.fail("/swift/", 503, times=2)
    target = signals.target_for({"deploy_signal_transport": "TEMP_URL_SIGNAL",
                                 "deploy_signal_id": fakecloud.temp_url("obj")})
    signals.deliver(target, b"{}", attempts=3, budget=5, sleep=lambda s: None)
    assert [r.method for r in fakecloud.requests] == ["PUT"] * 3
    assert fakecloud.get_object("obj") == b"{}"


def test_a_signal_reply_is_read_only_up_to_a_small_limit():
    with BadPeer("huge") as peer:
        took, err = elapsed(lambda: signals.send(_target("TEMP_URL_SIGNAL", peer.url), b"{}",
                                                 deadline=10))
    assert err is None  # 200: delivered, the endless reply left unread
    assert took < 3
    assert peer.sent < 16 * 1024 * 1024, peer.sent  # what socket buffers hold, no more


def test_the_ec2_walk_as_a_whole_has_a_deadline(monkeypatch):
    # Every key answers inside its own 1 s deadline (30 bytes at 0.02 s), but 31 of them
    # would take about 20 s: the walk ends at its own bound, 4 timeouts.
    from guestagent.collectors import ec2

    monkeypatch.setattr(ec2, "WALK_TIMEOUTS", 4)
    listing = "\n".join(f"k{i}" for i in range(10)).encode()
    with BadPeer("trickle", interval=0.02, drip=listing) as peer:
        source = build("ec2", {"metadata_url": peer.url + "/", "timeout": TIMEOUT,
                               "config_drive": "false"})
        took, err = elapsed(lambda: source.collect(None))
    assert isinstance(err, SourceUnavailable) and "deadline" in str(err), err
    assert len(peer.requests) >= 3  # several keys were read before the walk ran out
    assert 4 * TIMEOUT * 0.9 <= took <= 4 * TIMEOUT + SLACK
