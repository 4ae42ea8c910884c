"""The signal endpoints are down for the whole first hour of simulated time: the agent runs
in-process on a simulated clock (its waits and in-pass retry sleeps advance the clock, no
real sleeping), against the real fake cloud on loopback. Nothing is lost, retries back off,
and every result is delivered exactly once on recovery."""

from tests.support.agent import deployment, make_agent, signals_for
from tests.support.clock import SimulatedClock

HOUR = 3600.0
DOWN = {"CFN_SIGNAL": "/cfn/v1/signal", "TEMP_URL_SIGNAL": "/swift/", "HEAT_SIGNAL": "/heat/"}


def signal_requests(cloud, name):
    return sum(1 for r in list(cloud.requests) if r.method in ("POST", "PUT")
               and any(r.path.startswith(p) for p in DOWN.values()) and f"/{name}" in r.path)


def test_signal_endpoint_down_for_an_hour(fakecloud, tmp_path):
    runs = tmp_path / "runs"
    names = {t: f"outage-{t.lower()}" for t in DOWN}
    fakecloud.set_metadata({"deployments": [
        deployment(fakecloud, n, f"#!/bin/sh\necho {n} >> {runs}\n", transport=t)
        for t, n in names.items()]})
    for prefix in DOWN.values():
        fakecloud.fail(prefix, 503)
    clock = SimulatedClock()
    # The request source at the idle interval too: an hour is ~120 passes, not 3600 (the
    # signal backoff is what is tested here; the schedule is in test_schedule.py).
    agent = make_agent(fakecloud, tmp_path, clock, cli={"conditional_polling_interval": 30})
    start = clock.now

    attempts_at = {n: [] for n in names.values()}  # simulated times of each one's tries
    passes = 0
    while clock.now - start < HOUR:
        before = {n: signal_requests(fakecloud, n) for n in attempts_at}
        agent.run_pass()
        passes += 1
        for n, times in attempts_at.items():
            times += [clock.now] * (signal_requests(fakecloud, n) - before[n])
        clock.sleep(agent.next_wait())

    # Nothing delivered, nothing lost, nothing re-run.
    assert fakecloud.signals == []
    assert sorted(runs.read_text().split()) == sorted(names.values())
    assert len(agent.pending_signals()) == len(names)
    assert passes < 400  # polled at the idle interval, not in a tight loop
    for name, times in attempts_at.items():
        # Backed off: tens of tries in an hour, not one per poll...
        assert 5 <= len(times) <= 60, (name, times)
        # ...later tries further apart than the first ones, never more than 5 minutes apart.
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert sum(gaps[-6:]) / 6 > 5 * (sum(gaps[:6]) / 6 + 1), (name, gaps)
        assert max(gaps) <= 300 + 1, (name, gaps)

    fakecloud.recover()
    recovered_at = clock.now
    while clock.now - recovered_at < 600:
        agent.run_pass()
        if not agent.pending_signals():
            break  # measured here, not after the idle wait that follows the last delivery
        clock.sleep(agent.next_wait())
    assert clock.now - recovered_at <= 301  # within one capped backoff of recovery
    for transport, name in names.items():
        [body] = signals_for(fakecloud, name)
        assert body["deploy_status_code"] == 0 and body["deploy_stdout"] == "", transport
    # And a day of idle passes later, still exactly once.
    for _ in range(50):
        agent.run_pass()
        clock.sleep(agent.next_wait())
    assert len(fakecloud.signals) == len(names)
    assert sorted(runs.read_text().split()) == sorted(names.values())
