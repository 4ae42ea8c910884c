"""The metadata server misbehaves every way it can (500, a hang past the timeout, a cut
mid-body, truncated JSON, a 200 with HTML), then recovers: the daemon keeps its last good
metadata, re-runs nothing, stays up, says what is wrong once per fault, and converges."""

import json
import signal

from tests.support.agent import deployment, signals_for, start_agent
from tests.support.wait import wait_until

FAULTS = [  # (inject, what the log says)
    (lambda cloud: cloud.fail("/metadata", 500), "HTTP 500"),
    (lambda cloud: cloud.hang("/metadata", seconds=3), "Timeout"),
    (lambda cloud: cloud.cut("/metadata"), "GET http"),
    (lambda cloud: cloud.garble("/metadata", "truncated"), "body is not JSON"),
    (lambda cloud: cloud.garble("/metadata", "html"), "body is not JSON (text/html)"),
]


def polls(cloud):
    return sum(1 for r in list(cloud.requests) if r.path == "/metadata")


def test_metadata_server_faults_then_recovery(fakecloud, tmp_path):
    runs = tmp_path / "runs"
    first = deployment(fakecloud, "first", f"#!/bin/sh\necho first >> {runs}\n")
    fakecloud.set_metadata({"deployments": [first]})
    config = tmp_path / "agent.yaml"
    config.write_text(json.dumps({
        "polling_interval": 0.2, "fast_poll_interval": 0.2,
        "request": {"metadata_url": fakecloud.metadata_url, "timeout": 1}}))
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    daemon = start_agent(state, "--config", str(config), "--collectors", "request", log=log)
    try:
        fakecloud.wait_for(lambda: len(fakecloud.signals) == 1, timeout=60)
        good = json.loads((state / "sources" / "request.json").read_text())["document"]

        for inject, message in FAULTS:
            seen = polls(fakecloud)
            inject(fakecloud)
            # Several polls under the fault, the daemon alive through all of them.
            fakecloud.wait_for(lambda seen=seen: polls(fakecloud) >= seen + 3, timeout=60)
            assert daemon.poll() is None
            wait_until(lambda message=message: message in log.read_text(),
                       what=f"log line {message!r}")
            fakecloud.recover("/metadata")
            assert json.loads((state / "sources" / "request.json").read_text())["document"] \
                == good
        text = log.read_text()
        assert text.count("HTTP 500") == 1  # once per fault, not once per poll
        assert "Traceback" not in text

        second = deployment(fakecloud, "second", f"#!/bin/sh\necho second >> {runs}\n")
        fakecloud.set_metadata({"deployments": [first, second]})
        fakecloud.wait_for(lambda: len(fakecloud.signals) == 2, timeout=60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert runs.read_text() == "first\nsecond\n"
    assert [b["deploy_status_code"] for b in signals_for(fakecloud, "second")] == [0]
    assert len(signals_for(fakecloud, "first")) == 1
    assert "source request is back" in log.read_text()
