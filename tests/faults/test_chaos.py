"""Chaos: script deployments under a daemon that is killed with SIGKILL at random moments and
restarted. Afterwards every deployment was signalled at least once and at most once per kill,
no script ran more than max_attempts times, and no two copies of a script ever ran at once
(each script holds a lock for its whole run; a second copy finding it taken says so)."""

import json
import random
import signal
import subprocess

from tests.support.agent import deployment, signals_for, start_agent
from tests.support.wait import wait_until

COUNT = 8
KILLS = 6
MAX_ATTEMPTS = 3

SCRIPT = """#!/bin/bash
exec 9>>{dir}/lock-$deploy_resource_name
flock -n 9 || echo "OVERLAP $deploy_resource_name $$" >> {dir}/log
echo "start $deploy_resource_name $$" >> {dir}/log
sleep 0.$(( RANDOM % 5 + 2 ))
echo "end $deploy_resource_name $$" >> {dir}/log
printf done > "$heat_outputs_path.result"
"""


def _journal(state):
    found = {}
    for path in (state / "deployments").glob("*/journal.json"):
        entry = json.loads(path.read_text())
        found[entry["name"]] = entry
    return found


def test_kill_9_at_random_moments(fakecloud, tmp_path):
    rng = random.Random(20261130)
    names = [f"chaos-{i}" for i in range(COUNT)]
    fakecloud.set_metadata({"deployments": [
        deployment(fakecloud, n, SCRIPT.format(dir=tmp_path), outputs=["result"])
        for n in names]})
    state, log = tmp_path / "state", tmp_path / "log"
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    kills = 0
    for _ in range(KILLS):
        agent = start_agent(state, *args, log=tmp_path / f"agent-{kills}.log")
        # Let it get somewhere: a random share of a script's run, or a few of them.
        try:
            agent.wait(timeout=rng.uniform(0.3, 2.5))
        except subprocess.TimeoutExpired:  # still running, as expected: kill it mid-flight
            agent.send_signal(signal.SIGKILL)
            agent.wait()
            kills += 1
    agent = start_agent(state, *args, log=tmp_path / "agent-final.log")
    try:
        wait_until(lambda: all(_journal(state).get(n, {}).get("state") == "signalled"
                               for n in names), timeout=120, what="every deployment signalled")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)

    lines = log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("OVERLAP")], lines
    for name in names:
        starts = [line for line in lines if line.startswith(f"start {name} ")]
        assert 1 <= len(starts) <= MAX_ATTEMPTS, (name, starts)
        bodies = signals_for(fakecloud, name)
        assert 1 <= len(bodies) <= 1 + kills, (name, len(bodies))
        assert bodies[-1]["deploy_status_code"] == 0 or "interrupted" in \
            bodies[-1]["deploy_stderr"]
    assert kills == KILLS
