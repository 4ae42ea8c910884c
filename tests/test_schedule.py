"""The per-source poll schedule, on a simulated clock against the fake cloud on loopback: a
cheap source (the request source answering 304) is polled every conditional_polling_interval,
an expensive one (cfn: a signature check and a database read per poll) every
polling_interval, every source at fast_poll_interval while the fast-poll window lasts."""

from guestagent.agent import Agent
from guestagent.collectors import build
from guestagent.state import SourceCache
from tests.support.agent import make_agent
from tests.support.clock import SimulatedClock

CFN = {"stack_name": "st", "access_key_id": "AKID", "secret_access_key": "secret-key-123",
       "path": "server.Metadata"}


def heat_style_metadata(cloud, **extra) -> dict:
    """What Heat serves over the request source: its os-collect-config key names cfn."""
    cloud.add_ec2_credentials("AKID", "secret-key-123")
    cloud.set_server_metadata("st", "uuid-1", "server", {"from": "cfn"})
    occ = {"collectors": ["cfn"], "polling_interval": 30,
           "cfn": {**CFN, "metadata_url": f"{cloud.url}/cfn/v1/"}}
    return {"os-collect-config": occ, "deployments": [], **extra}


class Passes:
    """Runs passes and says which sources each one polled, from the cloud's request log."""

    def __init__(self, cloud, agent: Agent, clock: SimulatedClock):
        self.cloud, self.agent, self.clock = cloud, agent, clock
        self.start = clock.now

    def run(self):
        """One pass now: (requests of the request source, of cfn, the pass's result)."""
        seen = len(self.cloud.requests)
        result = self.agent.run_pass()
        new = list(self.cloud.requests)[seen:]
        self.last_metadata = [r for r in new if r.path == "/metadata"]
        return (len(self.last_metadata), sum(1 for r in new if r.path.startswith("/cfn/")), result)

    def wait(self) -> float:
        """Sleep (simulated) as the daemon would; the wait it took."""
        wait = self.agent.next_wait()
        self.clock.sleep(wait)
        return wait

    @property
    def elapsed(self) -> float:
        return self.clock.now - self.start


def test_cheap_source_every_second_expensive_one_at_polling_interval(fakecloud, tmp_path):
    fakecloud.set_metadata(heat_style_metadata(fakecloud))
    clock = SimulatedClock()
    agent = make_agent(fakecloud, tmp_path, clock, fast_poll_period=0)
    passes = Passes(fakecloud, agent, clock)

    # First pass: the request source, then cfn as soon as the metadata names it.
    assert passes.run()[:2] == (1, 1)
    assert "If-None-Match" not in passes.last_metadata[0].headers
    assert agent.metadata["from"] == "cfn"
    for second in range(1, 30):
        assert passes.wait() == 1.0
        assert passes.run()[:2] == (1, 0), second  # a conditional GET only
        [get] = passes.last_metadata
        assert get.headers.get("If-None-Match")
    assert passes.wait() == 1.0 and passes.elapsed == 30
    assert passes.run()[:2] == (1, 1)  # Heat's polling_interval: 30 governs cfn

    # A failing expensive source stays reported as failing between its polls.
    fakecloud.fail("/cfn/", 503)
    while passes.elapsed < 60:
        passes.wait()
        metadata, cfn, result = passes.run()
        assert result.sources_failed == (["cfn"] if passes.elapsed >= 60 else [])
    assert (metadata, cfn) == (1, 1)
    passes.wait()
    metadata, cfn, result = passes.run()
    assert (metadata, cfn, result.sources_failed) == (1, 0, ["cfn"])
    assert agent.metadata["from"] == "cfn"  # its last good copy is still in effect


def test_fast_window_polls_every_source_then_idle_schedule_resumes(fakecloud, tmp_path):
    fakecloud.set_metadata(heat_style_metadata(fakecloud))
    clock = SimulatedClock()
    agent = make_agent(fakecloud, tmp_path, clock)  # defaults: a 120 s window after a change
    passes = Passes(fakecloud, agent, clock)

    assert passes.run()[:2] == (1, 1)
    while passes.elapsed < 119:
        assert passes.wait() == 1.0
        assert passes.run()[:2] == (1, 1), passes.elapsed
    # The window is over: cfn was last polled at 119 s and is next due at 149 s.
    cfn_polls_at = []
    while passes.elapsed < 160:
        assert passes.wait() == 1.0
        if passes.run()[1]:
            cfn_polls_at.append(passes.elapsed)
    assert cfn_polls_at == [149]

    # A change through the cheap source opens the window again: cfn, last polled more than
    # fast_poll_interval ago, is due at once; then both every second.
    fakecloud.set_metadata(heat_style_metadata(fakecloud, generation=2))
    passes.wait()
    assert passes.run()[:2] == (1, 0)
    assert agent.metadata["generation"] == 2
    assert passes.wait() == 0.0
    assert passes.run()[:2] == (0, 1)
    assert passes.wait() == 1.0
    assert passes.run()[:2] == (1, 1)


def test_reload_polls_every_source(fakecloud, tmp_path):
    fakecloud.set_metadata(heat_style_metadata(fakecloud))
    clock = SimulatedClock()
    agent = make_agent(fakecloud, tmp_path, clock, fast_poll_period=0)
    passes = Passes(fakecloud, agent, clock)
    passes.run()
    passes.wait()
    assert passes.run()[:2] == (1, 0)
    agent.reload()
    assert agent.next_wait() == 0
    assert passes.run()[:2] == (1, 1)


def test_conditional_polling_interval_equal_to_polling_interval_is_the_old_schedule(
        fakecloud, tmp_path):
    fakecloud.set_metadata(heat_style_metadata(fakecloud))
    clock = SimulatedClock()
    agent = make_agent(fakecloud, tmp_path, clock, fast_poll_period=0,
                       conditional_polling_interval=30)
    passes = Passes(fakecloud, agent, clock)
    passes.run()
    for _ in range(3):
        assert passes.wait() == 30.0
        assert passes.run()[:2] == (1, 1)


def test_request_source_is_cheap_once_it_has_a_validator():
    request = build("request", {"metadata_url": "http://127.0.0.1:9/metadata"})
    assert not request.cheap_poll(None)
    assert not request.cheap_poll(SourceCache({}))
    assert request.cheap_poll(SourceCache({}, etag='"abc"'))
    assert request.cheap_poll(SourceCache({}, last_modified="Sat, 21 Nov 2026 12:00:00 GMT"))
    cfn = build("cfn", {**CFN, "metadata_url": "http://127.0.0.1:9/v1/"})
    assert not cfn.cheap_poll(None) and not cfn.cheap_poll(SourceCache({}, etag='"abc"'))
