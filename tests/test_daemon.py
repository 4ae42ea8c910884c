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
