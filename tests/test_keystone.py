"""The Keystone client against the fake Keystone: token replies of the wrong shape, a refused
login, replies too large, all end as typed source or signal errors (never an exception that
escapes), a refused login is not asked again before its backoff, and a fuzzer mutating token
replies finds nothing else."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guestagent import keystone, signals
from guestagent.collectors import build
from guestagent.errors import (
    KeystoneError,
    SignalFailed,
    SourceGone,
    SourceUnavailable,
    TransportError,
)
from tests.badpeer import BadPeer

DOC = {"deployments": []}


def _heat(cloud, password="agent-pw"):
    cloud.add_user("agent", "agent-pw")
    cloud.set_server_metadata("st", "uuid-1", "server", DOC)
    return build("heat", {"auth_url": cloud.auth_url, "user_id": "agent", "password": password,
                          "project_id": cloud.project_id, "stack_id": "st/uuid-1",
                          "resource_name": "server", "region_name": "RegionOne"})


def _set(path, value):
    def hook(body):
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return body
    return hook


BAD_REPLIES = [  # (token reply rewrite, what the error names)
    (lambda b: [b], "reply is not an object"),
    (lambda b: b"<html>login</html>", "not JSON"),
    (lambda b: "[" * 100000, "not JSON"),
    (lambda b: b"x" * (5 * 1024 * 1024), "larger than"),
    (_set(["token"], ["not", "an", "object"]), "reply.token has the wrong type"),
    (_set(["token", "catalog"], {"orchestration": "x"}), "token.catalog has the wrong type"),
    (_set(["token", "catalog"], "catalog"), "token.catalog has the wrong type"),
    (_set(["token", "catalog", 0], ["svc"]), "token.catalog[0] is not an object"),
    (_set(["token", "catalog", 0, "endpoints"], "http://x/"), "endpoints has the wrong type"),
    (_set(["token", "catalog", 0, "endpoints", 0], "http://x/"), "endpoints[0] is not an"),
    (_set(["token", "catalog", 0, "endpoints", 0, "url"], 42), "url has the wrong type"),
    (_set(["token", "catalog", 0, "endpoints", 0, "url"], "http://[::1/x"), "not an http(s)"),
    (_set(["token", "catalog", 0, "endpoints", 0, "url"], "file:///etc"), "not an http(s)"),
    (_set(["token", "catalog", 0, "endpoints", 0, "url"], "http://h:99999/"), "not an http"),
    (_set(["token", "catalog", 0, "endpoints", 0, "region_id"], ["R"]), "region_id has the"),
    (_set(["token", "expires_at"], 1234567890), "expires_at has the wrong type"),
    (_set(["token", "expires_at"], "tomorrow"), "expires_at is not a date"),
    (_set(["token", "expires_at"], "2030-13-45T00:00:00Z"), "expires_at is not a date"),
    (_set(["token", "expires_at"], "2001-01-01T00:00:00Z"), "not after token.issued_at"),
    (_set(["token", "issued_at"], "noon"), "issued_at is not a date"),
]


def test_token_lifetime_is_counted_on_our_clock(fakecloud):
    # The guest's clock is a year off (no NTP yet): the token still serves its hour.
    now = [1000.0]
    fakecloud.add_user("agent", "agent-pw")
    creds = keystone.Credentials(fakecloud.auth_url, "agent", "agent-pw", fakecloud.project_id)
    client = keystone.KeystoneClient(creds, clock=lambda: now[0])
    url = client.endpoint("orchestration") + "/stacks/st/uuid-1/resources/server/metadata"
    for _ in range(3):
        client.request("GET", url)
        now[0] += 600
    assert fakecloud.logins == 1
    now[0] += 3600 - 1800 - RENEW
    client.request("GET", url)
    assert fakecloud.logins == 2


RENEW = keystone.RENEW_BEFORE


@pytest.mark.parametrize("rewrite,named", BAD_REPLIES)
def test_a_token_reply_of_the_wrong_shape_is_a_source_error(fakecloud, rewrite, named):
    fakecloud.token_hook = rewrite
    with pytest.raises(SourceUnavailable, match="heat") as err:
        _heat(fakecloud).collect(None)
    assert named in str(err.value)


def test_a_malformed_token_reply_to_a_signal_is_a_transient_signal_error(fakecloud):
    fakecloud.add_user("agent", "agent-pw")
    fakecloud.token_hook = _set(["token", "catalog"], "x")
    target = signals.target_for({
        "deploy_signal_transport": "HEAT_SIGNAL", "deploy_auth_url": fakecloud.auth_url,
        "deploy_user_id": "agent", "deploy_password": "agent-pw",
        "deploy_project_id": fakecloud.project_id, "deploy_stack_id": "st/1",
        "deploy_resource_name": "r"})
    with pytest.raises(SignalFailed, match="token.catalog has the wrong type") as err:
        signals.send(target, b"{}")
    assert err.value.transient


def test_a_heat_reply_through_keystone_is_bounded_in_size(fakecloud):
    with BadPeer("huge") as peer:
        endpoint = ["token", "catalog", 0, "endpoints"]
        fakecloud.token_hook = _set(endpoint, [{"interface": "public", "region_id": "RegionOne",
                                                "url": peer.url + "/heat"}])
        with pytest.raises(SourceUnavailable, match="larger than"):
            _heat(fakecloud).collect(None)
    assert peer.sent < 48 * 1024 * 1024


def test_a_refused_login_backs_off(fakecloud):
    """Refused credentials are SourceGone (Heat deletes a stack's user with the stack), with
    the same words every time while the login backs off, so the poller logs them once."""
    heat = _heat(fakecloud, password="wrong")
    with pytest.raises(SourceGone, match="HTTP 401") as first:
        heat.collect(None)
    for _ in range(5):
        with pytest.raises(SourceGone) as again:
            heat.collect(None)
        assert str(again.value) == str(first.value)
    assert sum(r.path.endswith("/auth/tokens") for r in fakecloud.requests) == 1


def test_a_keystone_outage_is_not_a_gone_source(fakecloud):
    fakecloud.fail("/identity", status=503)
    with pytest.raises(SourceUnavailable, match="HTTP 503") as err:
        _heat(fakecloud).collect(None)
    assert not isinstance(err.value, SourceGone)


def test_the_login_backoff_doubles_and_resets_on_success(fakecloud):
    now = [1000.0]
    fakecloud.add_user("agent", "right")
    creds = keystone.Credentials(fakecloud.auth_url, "agent", "wrong", fakecloud.project_id)
    client = keystone.KeystoneClient(creds, clock=lambda: now[0])
    def logins() -> int:
        return sum(r.path.endswith("/auth/tokens") for r in fakecloud.requests)
    for failures, delay in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        with pytest.raises(KeystoneError, match="credentials refused") as err:
            client.endpoint("orchestration")
        assert not err.value.transient and logins() == failures
        now[0] += delay - 0.5
        with pytest.raises(KeystoneError, match="credentials refused"):
            client.endpoint("orchestration")
        assert logins() == failures
        now[0] += 0.5
    fakecloud.add_user("agent", "wrong")  # the password is fixed on the Keystone side
    assert client.endpoint("orchestration") == fakecloud.heat_url()
    assert client._failures == 0


def test_a_refused_login_for_a_signal_is_final(fakecloud):
    target = signals.target_for({
        "deploy_signal_transport": "ZAQAR_SIGNAL", "deploy_auth_url": fakecloud.auth_url,
        "deploy_user_id": "nobody", "deploy_password": "pw", "deploy_project_id": "p",
        "deploy_queue_id": "q"})
    with pytest.raises(SignalFailed, match="credentials refused") as err:
        signals.send(target, b"{}")
    assert not err.value.transient


# ---- fuzzing -------------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
TEXTS = st.sampled_from(["", "public", "orchestration", "RegionOne", "http://", "http://x:0/",
                         "2030-01-01T00:00:00Z", "2030-01-01T00:00:00.123+02:00", "9999-99-99",
                         "http://127.0.0.1:1/heat", "\x1b[31m\n", "https://[::1]:8/"])


def _mutate(data, body):
    """Replace one randomly chosen node of `body` with random JSON (or a plausible string)."""
    node, path = body, []
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        path.append(key)
        node = node[key]
    value = data.draw(st.one_of(JSON, TEXTS))
    if not path:
        return value
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return body


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_token_replies_give_typed_errors_only(fakecloud, data):
    fakecloud.add_user("agent", "agent-pw")
    fakecloud.set_server_metadata("st", "uuid-1", "server", DOC)
    count = data.draw(st.integers(1, 3))
    fakecloud.token_hook = lambda body: json.loads(json.dumps(
        _mutate_n(data, copy.deepcopy(body), count)))
    creds = keystone.Credentials(fakecloud.auth_url, "agent", "agent-pw", fakecloud.project_id,
                                 region_name="RegionOne", timeout=2)
    client = keystone.KeystoneClient(creds)
    try:
        url = client.endpoint("orchestration") + "/stacks/st/uuid-1/resources/server/metadata"
        client.request("GET", url)
    except (KeystoneError, TransportError):
        pass  # typed: the source or signal reports it; anything else fails the test


def _mutate_n(data, body, count):
    for _ in range(count):
        body = _mutate(data, body)
    return body


def test_websocket_endpoints_take_ws_urls_and_only_they():
    """Zaqar's messaging-websocket endpoint is ws:// (or wss://); other services stay http(s)."""
    token = keystone.Token("t", 0.0, (
        ("messaging-websocket", "public", "R", "R", "ws://127.0.0.1:9000"),
        ("orchestration", "public", "R", "R", "ws://127.0.0.1:8004"),
        ("messaging", "public", "R", "R", "http://127.0.0.1:8888")))
    creds = keystone.Credentials(auth_url="http://k/v3", user_id="u", password="p",
                                 project_id="p")
    assert keystone._pick(token, "messaging-websocket", "public", creds) == "ws://127.0.0.1:9000"
    assert keystone._pick(token, "messaging", "public", creds) == "http://127.0.0.1:8888"
    with pytest.raises(KeystoneError, match="not an http"):
        keystone._pick(token, "orchestration", "public", creds)
