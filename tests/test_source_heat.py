"""The heat source against the fake cloud: token reuse, expiry, revocation, bad replies."""

import logging

import pytest

from guestagent.collectors import build
from guestagent.errors import SourceNotConfigured, SourceUnavailable

DOC = {"deployments": [{"id": "d1", "group": "script", "config": "true"}]}


def _heat(cloud, password="secret-pw"):
    cloud.add_user("agent", "secret-pw")
    cloud.set_server_metadata("st", "uuid-1", "server", DOC)
    return build("heat", {"auth_url": cloud.auth_url, "user_id": "agent", "password": password,
                          "project_id": cloud.project_id, "stack_id": "st/uuid-1",
                          "resource_name": "server", "region_name": "RegionOne"})


def _gets(cloud):
    return [r for r in cloud.requests if r.path.endswith("/metadata")]


def test_one_login_across_many_polls(fakecloud):
    heat = _heat(fakecloud)
    for _ in range(5):
        assert heat.collect(None).document == DOC
    assert fakecloud.logins == 1
    gets = _gets(fakecloud)
    assert len(gets) == 5
    assert gets[0].path == (f"/heat/v1/{fakecloud.project_id}/stacks/st/uuid-1/resources/"
                            "server/metadata")
    login = fakecloud.requests[0]
    assert login.json["auth"]["identity"]["password"]["user"] == {"id": "agent",
                                                                  "password": "secret-pw"}
    assert login.json["auth"]["scope"] == {"project": {"id": fakecloud.project_id}}
    assert len({g.headers["X-Auth-Token"] for g in gets}) == 1


def test_token_near_expiry_logs_in_again(fakecloud):
    # A token within two minutes of expiry is renewed before use: a 60 s token serves one use.
    # The first poll also logs in for the catalog; after that, exactly one login per poll.
    fakecloud.token_lifetime = 60
    heat = _heat(fakecloud)
    for _ in range(3):
        assert heat.collect(None).document == DOC
    assert fakecloud.logins == 4
    tokens = [g.headers["X-Auth-Token"] for g in _gets(fakecloud)]
    assert len(set(tokens)) == 3


def test_revoked_token_gets_exactly_one_relogin(fakecloud):
    heat = _heat(fakecloud)
    heat.collect(None)
    fakecloud.revoke_tokens()
    assert heat.collect(None).document == DOC
    assert fakecloud.logins == 2
    statuses = [r.path.rsplit("/", 1)[-1] for r in fakecloud.requests]
    assert statuses == ["tokens", "metadata", "metadata", "tokens", "metadata"]


def test_wrong_password_is_clear_and_secret_free(fakecloud, caplog):
    caplog.set_level(logging.DEBUG)
    heat = _heat(fakecloud, password="not-the-password")
    with pytest.raises(SourceUnavailable) as err:
        heat.collect(None)
    message = str(err.value)
    assert err.value.source == "heat"
    assert "login" in message and "agent" in message and "401" in message
    assert "not-the-password" not in message and "not-the-password" not in caplog.text
    assert fakecloud.logins == 0


def test_token_never_logged(fakecloud, caplog):
    caplog.set_level(logging.DEBUG)
    heat = _heat(fakecloud)
    heat.collect(None)
    token = _gets(fakecloud)[0].headers["X-Auth-Token"]
    assert token not in caplog.text and "secret-pw" not in caplog.text


@pytest.mark.parametrize("kind", ["truncated", "html"])
def test_malformed_reply(fakecloud, kind):
    heat = _heat(fakecloud)
    fakecloud.garble("/heat/", kind)
    with pytest.raises(SourceUnavailable, match="not JSON"):
        heat.collect(None)


def test_reply_without_metadata_object(fakecloud):
    heat = _heat(fakecloud)
    fakecloud.set_server_metadata("st", "uuid-1", "server", [1, 2])
    with pytest.raises(SourceUnavailable, match="no \"metadata\" object"):
        heat.collect(None)


def test_server_error_and_unreachable(fakecloud):
    heat = _heat(fakecloud)
    fakecloud.fail("/heat/", 503, times=1)
    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        heat.collect(None)
    assert heat.collect(None).document == DOC
    fakecloud.cut("/heat/", times=1)
    with pytest.raises(SourceUnavailable, match="unreachable"):
        heat.collect(None)


def test_incomplete_options_are_not_configured():
    with pytest.raises(SourceNotConfigured, match="password, project_id"):
        build("heat", {"auth_url": "http://x/v3", "user_id": "u", "stack_id": "a/b",
                       "resource_name": "r"})


def test_a_deleted_stack_is_source_gone_and_waits_longest(fakecloud, tmp_path):
    """Heat's 404 for the server's resource (the stack was deleted) is SourceGone: the poller
    asks again only after MAX_BACKOFF, and says so once."""
    from guestagent.errors import SourceGone
    from guestagent.poller import MAX_BACKOFF
    from tests.support.agent import make_agent
    from tests.support.clock import SimulatedClock

    fakecloud.add_user("u1", "pw")
    heat = build("heat", {"auth_url": fakecloud.auth_url, "user_id": "u1", "password": "pw",
                          "project_id": fakecloud.project_id, "stack_id": "gone/uuid-9",
                          "resource_name": "server"})
    with pytest.raises(SourceGone, match="HTTP 404"):
        heat.collect(None)

    clock = SimulatedClock()
    fakecloud.set_metadata({"os-collect-config": {"collectors": ["heat"], "heat": {
        "auth_url": fakecloud.auth_url, "user_id": "u1", "password": "pw",
        "project_id": fakecloud.project_id, "stack_id": "gone/uuid-9",
        "resource_name": "server"}}})
    agent = make_agent(fakecloud, tmp_path, clock, splay=0)
    assert "heat" in agent.run_pass().sources_failed
    polled = agent.poller._polled_at["heat"]
    assert agent.poller.due_at(agent.settings, "heat", clock.now) == polled + MAX_BACKOFF
