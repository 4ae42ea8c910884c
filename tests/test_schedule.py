"""The per-source poll schedule, on a simulated clock against the fake cloud on loopback: a
cheap source (the request source answering 304) is polled every conditional_polling_interval,
an expensive one (cfn: a signature check and a database read per poll) every
polling_interval, every source at fast_poll_interval while the fast-poll window lasts."""

import pytest

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
    agent = make_agent(fakecloud, tmp_path, clock, fast_poll_period=0, splay=0)
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


def test_a_change_polls_the_costly_source_on_a_decaying_burst(fakecloud, tmp_path):
    """After a change a costly source is polled 1, 2 and 4 s apart (three requests, not one a
    second for two minutes), then on its steady schedule; the cheap one every second."""
    fakecloud.set_metadata(heat_style_metadata(fakecloud))
    clock = SimulatedClock()
    agent = make_agent(fakecloud, tmp_path, clock, splay=0)
    passes = Passes(fakecloud, agent, clock)

    assert passes.run()[:2] == (1, 1)  # the first pass is a change
    cfn_polls_at = []
    while passes.elapsed < 100:
        assert passes.wait() == 1.0
        if passes.run()[1]:
            cfn_polls_at.append(passes.elapsed)
    assert cfn_polls_at == [1, 3, 7, 37, 67, 97]

    # A change through the cheap source starts the burst again: cfn 1, 3, 7 s later.
    fakecloud.set_metadata(heat_style_metadata(fakecloud, generation=2))
    passes.wait()
    start = passes.elapsed
    assert passes.run()[:2] == (1, 0)
    assert agent.metadata["generation"] == 2
    cfn_polls_at = []
    while passes.elapsed < start + 40:
        passes.wait()
        if passes.run()[1]:
            cfn_polls_at.append(passes.elapsed - start)
    assert cfn_polls_at[:3] == [1, 3, 7] and cfn_polls_at[3] >= 7 + 30
    assert len(cfn_polls_at) == 4


def test_a_delivered_signal_starts_a_burst(fakecloud, tmp_path):
    """A chain: Heat answers our signal with the next deployment; cfn is looked at 1 s later."""
    from tests.support.agent import deployment

    doc = heat_style_metadata(fakecloud)
    clock = SimulatedClock()
    fakecloud.set_metadata(doc)
    agent = make_agent(fakecloud, tmp_path, clock, splay=0)
    passes = Passes(fakecloud, agent, clock)
    passes.run()
    while passes.elapsed < 200:  # idle: cfn on its 30 s schedule only
        passes.wait()
        passes.run()
    fakecloud.set_server_metadata("st", "uuid-1", "server", {"from": "cfn", "deployments": [
        deployment(fakecloud, "first", "#!/bin/sh\necho 1\n")]})
    while not passes.run()[2].ran:
        passes.wait()
    signalled_at = passes.elapsed
    _, cfn, _ = passes.run()
    polls = []
    while passes.elapsed < signalled_at + 20:
        passes.wait()
        if passes.run()[1]:
            polls.append(passes.elapsed - signalled_at)
    assert polls[:3] == [1, 3, 7]


def test_failures_back_off_and_not_found_waits_longest(fakecloud, tmp_path):
    from guestagent.errors import SourceGone
    from guestagent.poller import MAX_BACKOFF

    fakecloud.set_metadata(heat_style_metadata(fakecloud))
    clock = SimulatedClock()
    agent = make_agent(fakecloud, tmp_path, clock, splay=0, fast_poll_period=0)
    passes = Passes(fakecloud, agent, clock)
    passes.run()
    fakecloud.fail("/cfn/", 503)
    cfn_polls_at = []
    while passes.elapsed < 400:
        passes.wait()
        if passes.run()[1]:
            cfn_polls_at.append(passes.elapsed)
    gaps = [b - a for a, b in zip(cfn_polls_at, cfn_polls_at[1:])]
    assert gaps[:3] == [30, 60, 120] and set(gaps[3:]) == {120}

    poller = agent.poller
    poller._failures["cfn"] = -1  # what a SourceGone leaves
    assert poller.due_at(agent.settings, "cfn", clock.now) == \
        poller._polled_at["cfn"] + MAX_BACKOFF
    assert issubclass(SourceGone, Exception)


def test_splay_spreads_a_fleet_booted_together(tmp_path):
    """100 instances booted in the same second: their steady polls of a costly source spread
    over the interval (no second with more than 10% of the fleet; without splay, all of it),
    each instance's schedule the same after a restart, intervals jittered by at most 10%."""
    from collections import Counter

    from guestagent import config
    from guestagent.poller import SourcePoller
    from guestagent.state import StateDir

    statedir = StateDir(tmp_path / "s")
    boot = 1_800_000_000.0

    def busiest_second(splay):
        settings = config.load("/dev/null", {"collectors": ["cfn"], "splay": splay},
                               old_config=None).settings()
        per_second = Counter()
        for n in range(100):
            poller = SourcePoller(statedir, lambda: boot, instance=f"instance-{n}")
            restarted = SourcePoller(statedir, lambda: boot, instance=f"instance-{n}")
            poller._polled_at["cfn"] = restarted._polled_at["cfn"] = boot
            assert poller.due_at(settings, "cfn", boot) == restarted.due_at(settings, "cfn", boot)
            at = boot
            for _ in range(20):
                nxt = poller.due_at(settings, "cfn", at)
                assert 15 <= nxt - at <= 48  # the grid point half an interval or more ahead
                poller._polled_at["cfn"] = at = nxt
                per_second[int(at)] += 1
        return max(per_second.values())

    assert busiest_second(30) <= 10
    assert busiest_second(0) == 100


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
                       conditional_polling_interval=30, splay=0)
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


# The costly source's burst after our signal (poller: 1, 2, 4 s apart): a follow-up that
# appears d s after the signal is polled at the first of these at or after d.
BURST_POLLS = (1.0, 3.0, 7.0)
# Heat adds a chain's next deployment within a few seconds of our signal; 1.05 s is the worst
# case (just after the first burst poll: seen at 3 s).
CHAIN_DELAYS = (0.2, 0.5, 0.8, 1.05, 1.1, 1.4, 1.7, 2.0, 2.3, 2.6, 2.9)


def test_a_chain_follow_up_starts_within_a_second_median(fakecloud, tmp_path):
    """A chain of deployments on one costly source (cfn): each time Heat receives our signal it
    adds the next deployment d s later (fakecloud's on_signal); the agent polls it on the burst
    and starts its hook. Latency from appearing to the hook's pass is exactly the wait to the
    next burst poll: below 2 s for any d up to 3 s, 0.75 s median for d uniform on (0, 3]."""
    import statistics

    from tests.support.agent import deployment

    clock = SimulatedClock()
    fakecloud.set_metadata(heat_style_metadata(fakecloud))
    agent = make_agent(fakecloud, tmp_path, clock, splay=0)
    marks = tmp_path / "marks"
    marks.mkdir()
    deps: list[dict] = []
    names = [f"link{k}" for k in range(len(CHAIN_DELAYS) + 1)]
    signalled_at: dict[str, float] = {}
    fakecloud.on_signal = lambda _t, target, _b: signalled_at.setdefault(target, clock.now)

    def publish(k: int) -> float:
        deps.append(deployment(fakecloud, names[k], f"#!/bin/sh\ntouch {marks / names[k]}\n"))
        fakecloud.set_server_metadata("st", "uuid-1", "server",
                                      {"from": "cfn", "deployments": list(deps)})
        return clock.now

    agent.run_pass()
    clock.sleep(100)  # idle: the boot burst is over, cfn on its 30 s schedule
    publish(0)
    agent.run_pass()
    started_at, appeared_at = {}, {}
    while len(started_at) < len(CHAIN_DELAYS):
        k = len(started_at) + 1  # the link Heat adds next
        if k not in appeared_at and names[k - 1] in signalled_at:
            due = signalled_at[names[k - 1]] + CHAIN_DELAYS[k - 1]
        else:
            due = None
        wake = clock.now + agent.next_wait()
        if due is not None and due <= wake:
            clock.sleep(due - clock.now)  # Heat adds it while the daemon waits
            appeared_at[k] = publish(k)
        clock.sleep(wake - clock.now)
        result = agent.run_pass()
        assert not result.failed
        if k in appeared_at and deps[k]["id"] in result.ran:
            started_at[k] = clock.now
        assert clock.now - signalled_at[names[k - 1]] < 30, f"{names[k]} not started within 30 s of the signal"
    latencies = [started_at[k] - appeared_at[k] for k in sorted(started_at)]
    expected = [min(p for p in BURST_POLLS if p >= d) - d for d in CHAIN_DELAYS]
    assert latencies == pytest.approx(expected, abs=1e-6)
    assert statistics.median(latencies) <= 1.0 and max(latencies) < 2.0
    assert sorted(p.name for p in marks.iterdir()) == sorted(names)  # every hook ran
    assert set(signalled_at) == set(names)
