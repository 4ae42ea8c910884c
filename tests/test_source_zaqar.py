"""The zaqar source against the fake Zaqar v2: headers, non-destructive claims, release, TLS."""

import logging

import pytest

from guestagent.collectors import build
from guestagent.collectors.base import NOT_MODIFIED
from guestagent.errors import SourceNotConfigured, SourceUnavailable
from guestagent.state import SourceCache
from tests.fakecloud import FakeCloud

DOC1 = {"deployments": [{"id": "d1"}]}
DOC2 = {"deployments": [{"id": "d1"}, {"id": "d2"}]}


def _zaqar(cloud, **extra):
    cloud.add_user("agent", "zaqar-pw")
    options = {"auth_url": cloud.auth_url, "user_id": "agent", "password": "zaqar-pw",
               "project_id": cloud.project_id, "queue_id": "meta-q"}
    options.update(extra)
    return build("zaqar", options)


def test_snapshot_is_kept_until_released(fakecloud):
    zaqar = _zaqar(fakecloud)
    fakecloud.post_message("meta-q", DOC1)
    got = zaqar.collect(None)
    assert got.document == DOC1
    assert fakecloud.queue("meta-q") == [DOC1]  # still there: not popped
    assert zaqar.collect(SourceCache(DOC1)) is NOT_MODIFIED
    zaqar.release()
    assert fakecloud.queue("meta-q") == []
    assert zaqar.collect(SourceCache(DOC1)) is NOT_MODIFIED


def test_headers_and_api(fakecloud):
    zaqar = _zaqar(fakecloud)
    fakecloud.post_message("meta-q", DOC1)
    zaqar.collect(None)
    zaqar.release()
    calls = [r for r in fakecloud.requests if r.path.startswith("/zaqar/")]
    assert [(r.method, r.path) for r in calls][:1] == [("POST", "/zaqar/v2/queues/meta-q/claims")]
    assert calls[-1].method == "DELETE" and calls[-1].query.get("claim_id")
    assert len({r.headers["Client-ID"] for r in calls}) == 1
    assert all(r.headers["X-Project-Id"] == fakecloud.project_id for r in calls)
    assert all(r.headers.get("X-Auth-Token") for r in calls)
    assert fakecloud.logins == 1


def test_newest_snapshot_wins_and_older_are_deleted(fakecloud):
    zaqar = _zaqar(fakecloud)
    fakecloud.post_message("meta-q", DOC1)
    assert zaqar.collect(None).document == DOC1
    fakecloud.post_message("meta-q", {"deployments": []})
    fakecloud.post_message("meta-q", DOC2)
    assert zaqar.collect(SourceCache(DOC1)).document == DOC2
    assert fakecloud.queue("meta-q") == [DOC2]


def test_restart_before_release_gets_the_snapshot_back(fakecloud):
    first = _zaqar(fakecloud)
    fakecloud.post_message("meta-q", DOC1)
    assert first.collect(None).document == DOC1
    # The agent dies before its deployments finish: a new collector, and the claim runs out.
    second = _zaqar(fakecloud)
    with pytest.raises(SourceUnavailable, match="no unclaimed metadata message"):
        second.collect(None)
    fakecloud.expire_claims()
    assert second.collect(None).document == DOC1
    # The held message's own claim running out is renewed quietly.
    fakecloud.expire_claims()
    assert second.collect(SourceCache(DOC1)) is NOT_MODIFIED
    second.release()
    assert fakecloud.queue("meta-q") == []


def test_non_object_message_is_dropped_with_a_reason(fakecloud):
    zaqar = _zaqar(fakecloud)
    fakecloud.post_message("meta-q", "not an object")
    with pytest.raises(SourceUnavailable, match="does not hold a JSON object"):
        zaqar.collect(None)
    assert fakecloud.queue("meta-q") == []


def test_errors_are_clear_and_secret_free(fakecloud, caplog):
    caplog.set_level(logging.DEBUG)
    zaqar = _zaqar(fakecloud, password="bad-zaqar-pw")
    with pytest.raises(SourceUnavailable) as err:
        zaqar.collect(None)
    assert err.value.source == "zaqar" and "login" in str(err.value)
    assert "bad-zaqar-pw" not in str(err.value) and "bad-zaqar-pw" not in caplog.text
    good = _zaqar(fakecloud)
    fakecloud.garble("/zaqar/", "html", times=1)
    with pytest.raises(SourceUnavailable, match="not JSON"):
        good.collect(None)


def test_tls_verified_by_default():
    cloud = FakeCloud(tls=True).start()
    try:
        cloud.post_message("meta-q", DOC1)
        with pytest.raises(SourceUnavailable) as err:
            _zaqar(cloud).collect(None)
        assert "SSL" in str(err.value) or "certificate" in str(err.value), str(err.value)
        assert cloud.logins == 0
        trusted = _zaqar(cloud, ca_certificate=cloud.ca_file)
        assert trusted.collect(None).document == DOC1
    finally:
        cloud.stop()


def test_missing_options():
    with pytest.raises(SourceNotConfigured, match="queue_id"):
        build("zaqar", {"auth_url": "http://x", "user_id": "u", "password": "p",
                        "project_id": "p"})
