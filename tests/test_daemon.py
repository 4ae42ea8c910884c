"""The daemon loop: picks up changes without a restart, polls conditionally, reloads on SIGHUP."""

import signal

from tests.support.agent import deployment, signals_for, start_agent
from tests.support.wait import wait_until


def test_daemon_picks_up_new_deployment_and_reloads_config(fakecloud, tmp_path):
    runs = tmp_path / "runs"
    first = deployment(fakecloud, "one", f"#!/bin/sh\necho one >> {runs}\n")
    fakecloud.set_metadata({"deployments": [first]})
    conf = tmp_path / "guestagent.yaml"
    conf.write_text(f"collectors: [request]\nrequest: {{metadata_url: '{fakecloud.metadata_url}'}}\n"
                    "fast_poll_interval: 0.2\n")
    state = tmp_path / "state"
    daemon = start_agent(state, config=conf, log=tmp_path / "log")
    try:
        fakecloud.wait_for(lambda: len(signals_for(fakecloud, "one")) == 1, timeout=30)
        second = deployment(fakecloud, "two", f"#!/bin/sh\necho two >> {runs}\n")
        fakecloud.set_metadata({"deployments": [first, second]})
        fakecloud.wait_for(lambda: len(signals_for(fakecloud, "two")) == 1, timeout=30)
        assert runs.read_text() == "one\ntwo\n"
        # Idle polls are conditional GETs.
        gets = [r for r in fakecloud.requests if r.path == "/metadata"]
        assert all("If-None-Match" in r.headers for r in gets[1:])

        # SIGHUP: a changed config file takes effect without a restart.
        fakecloud.put_object("other", {"deployments": [
            deployment(fakecloud, "three", f"#!/bin/sh\necho three >> {runs}\n")]})
        other = fakecloud.temp_url("other", method="GET")
        conf.write_text(f"collectors: [request]\nrequest: {{metadata_url: '{other}'}}\n"
                        "fast_poll_interval: 0.2\n")
        daemon.send_signal(signal.SIGHUP)
        fakecloud.wait_for(lambda: len(signals_for(fakecloud, "three")) == 1, timeout=30)
        wait_until(lambda: runs.read_text().endswith("three\n"), what="third run")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert "configuration reloaded" in (tmp_path / "log").read_text()


def test_idle_daemon_sees_a_change_at_the_conditional_interval(fakecloud, tmp_path):
    """Default settings, but no fast-poll window and a 10-minute polling_interval: only the
    cheap source's schedule (conditional_polling_interval, 1 s) can pick the change up within
    the bounded wait. While idle, every request is a conditional GET answered 304."""
    import requests

    runs = tmp_path / "runs"
    first = deployment(fakecloud, "one", f"#!/bin/sh\necho one >> {runs}\n")
    fakecloud.set_metadata({"deployments": [first]})
    etag = requests.get(fakecloud.metadata_url, timeout=10).headers["ETag"]
    conf = tmp_path / "guestagent.yaml"
    conf.write_text(f"collectors: [request]\nrequest: {{metadata_url: '{fakecloud.metadata_url}'}}\n"
                    "fast_poll_period: 0\npolling_interval: 600\n")
    daemon = start_agent(tmp_path / "state", config=conf, log=tmp_path / "log")
    try:
        fakecloud.wait_for(lambda: len(signals_for(fakecloud, "one")) == 1, timeout=30)
        idle_from = len(fakecloud.requests)
        # Idle: wait for a few polls, not for a time.
        assert fakecloud.wait_for(lambda: len(fakecloud.requests) >= idle_from + 3, timeout=20)
        idle = list(fakecloud.requests)[idle_from:]

        second = deployment(fakecloud, "two", f"#!/bin/sh\necho two >> {runs}\n")
        fakecloud.set_metadata({"deployments": [first, second]})
        wait_until(lambda: runs.exists() and runs.read_text() == "one\ntwo\n", timeout=20,
                   what="the second deployment's hook (polled at 1 s, not at 600 s)")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert len(idle) >= 3
    for req in idle:
        assert (req.method, req.path, req.headers.get("If-None-Match")) == \
            ("GET", "/metadata", etag)
