"""A bug in one source or one pass never ends the daemon: the source's error is that source's,
a pass that fails is logged and counted, the loop goes on and `status` shows it."""

import json
import threading
import types

from guestagent import collectors, status
from guestagent.collectors.base import Collector
from tests.support.agent import make_agent
from tests.support.clock import SimulatedClock


class Broken(Collector):
    name = "broken"

    def collect(self, previous):
        return {}["no such key"]  # a collector bug, not a SourceUnavailable

    def release(self):
        raise RuntimeError("release bug")


def test_a_collector_bug_is_that_sources_error(fakecloud, tmp_path, monkeypatch):
    module = types.ModuleType("tests_broken_collector")
    module.build = lambda options: Broken()
    monkeypatch.setitem(collectors.REGISTRY, "broken", collectors.Source("tests_broken_collector"))
    monkeypatch.setitem(__import__("sys").modules, "tests_broken_collector", module)
    fakecloud.set_metadata({"deployments": [], "from": "request"})
    agent = make_agent(fakecloud, tmp_path, SimulatedClock(),
                       cli={"collectors": ["request", "broken"]})
    result = agent.run_pass()
    assert result.sources_failed == ["broken"]
    assert agent.metadata["from"] == "request"
    assert "internal error: KeyError" in agent.poller.errors["broken"]


def test_the_loop_survives_a_failing_pass_and_status_shows_it(fakecloud, tmp_path):
    fakecloud.set_metadata({"deployments": []})
    clock = SimulatedClock()
    agent = make_agent(fakecloud, tmp_path, clock)
    real_poll = agent.poller.poll
    calls = []

    def poll(settings, only=None):
        calls.append(only)
        if len(calls) <= 2:
            raise ZeroDivisionError("a bug in a pass")
        return real_poll(settings, only)

    agent.poller.poll = poll
    health = tmp_path / "state" / "health.json"
    seen = []

    def on_pass(result):
        seen.append(json.loads(health.read_text()).get("loop_error"))
        snap = status.snapshot(tmp_path / "state")
        seen.append(any("failed unexpectedly" in r for r in
                        (snap.verdict(), snap.reasons)[1]))
        if len(seen) >= 6:
            agent.stop_event.set()

    agent.wake = threading.Event()
    agent.wake.wait = lambda timeout=None: clock.sleep(timeout or 0)
    agent.run_forever(on_pass)
    assert seen[0] == "ZeroDivisionError: a bug in a pass" and seen[1] is True
    assert seen[4] is None and seen[5] is False  # recovered: cleared
