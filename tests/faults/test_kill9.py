"""kill -9 at every journal step, for 50 deployments in one document: after restarts each
deployment ran to completion and its signal reached the cloud exactly once.

The agent is stopped at an exact step in three real ways: GUESTAGENT_CRASH_AFTER (the
agent SIGKILLs itself right after the n-th journal write of a state, see
guestagent/crashpoint.py), a hook that SIGKILLs its parent agent while it runs, and a signal
request held in flight by the cloud while the test SIGKILLs the agent.
"""

import json
import signal

import pytest

from tests.support.agent import deployment, run_agent, signals_for, start_agent
from tests.support.wait import wait_until

COUNT = 50
EVERY = 10  # each agent life ends at its 10th deployment reaching the step
SIGNAL_PATH = "/cfn/v1/signal"


def script(tmp_path):
    # Records each run; when its kill file exists, SIGKILLs the agent (its parent) mid-hook.
    return f"""#!/bin/sh
echo "$deploy_resource_name" >> {tmp_path}/runs
if [ -e "{tmp_path}/kill-$deploy_resource_name" ]; then
  rm "{tmp_path}/kill-$deploy_resource_name"
  kill -9 $PPID
fi
printf ok > "$heat_outputs_path.result"
"""


def journal(state):
    found = {}
    for path in (state / "deployments").glob("*/journal.json"):
        entry = json.loads(path.read_text())  # never torn: a parse error fails the test
        found[entry["name"]] = entry
    return found


def in_state(state, wanted):
    return sorted(n for n, e in journal(state).items() if e["state"] == wanted)


@pytest.mark.parametrize("step", ["received", "running", "hook", "finished", "signal",
                                  "signalled"])
def test_kill_9_at_every_journal_step(fakecloud, tmp_path, step):
    names = [f"dep-{i:02d}" for i in range(1, COUNT + 1)]
    fakecloud.set_metadata({"deployments": [
        deployment(fakecloud, n, script(tmp_path), outputs=["result"]) for n in names]})
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    state = tmp_path / "state"
    if step == "hook":
        for n in names[EVERY - 1::EVERY]:
            (tmp_path / f"kill-{n}").touch()

    kills = 0
    for _ in range(COUNT // EVERY + 3):
        if step == "signal":
            code = _life_with_signal_held(fakecloud, state, args)
        else:
            env = {} if step == "hook" else {"GUESTAGENT_CRASH_AFTER": f"{step}:{EVERY}"}
            code = run_agent(state, *args, env=env).returncode
        if code == 0:
            break
        assert code == -signal.SIGKILL
        kills += 1
        _check_stopped_where_expected(fakecloud, state, step)
    else:
        pytest.fail("the agent never completed a pass")

    assert kills >= COUNT // EVERY - 1
    for n in names:
        [body] = signals_for(fakecloud, n)  # exactly once
        assert body["deploy_status_code"] == 0 and body["result"] == "ok", n
    runs = (tmp_path / "runs").read_text().split()
    killed_mid_hook = set(names[EVERY - 1::EVERY]) if step == "hook" else set()
    for n in names:
        # A hook interrupted mid-run runs again (hooks are idempotent); no other re-runs.
        assert runs.count(n) == (2 if n in killed_mid_hook else 1), n
    assert in_state(state, "signalled") == names


def _life_with_signal_held(cloud, state, args):
    """One agent life, SIGKILLed while its 10th signal request is in flight at the cloud."""
    held = cloud.held
    cloud.hold(SIGNAL_PATH, after=EVERY - 1)
    agent = start_agent(state, "--once", *args)
    try:
        wait_until(lambda: cloud.held > held or agent.poll() is not None, timeout=120,
                   what="a held signal or the agent's exit")
        if cloud.held > held:
            agent.kill()
        return agent.wait(timeout=60)
    finally:
        cloud.release()
        cloud.recover(SIGNAL_PATH)


def _check_stopped_where_expected(cloud, state, step):
    # The journal shows the agent died exactly at the step asked for.
    if step in ("received", "finished"):
        # Only this life's: an earlier life's result is signalled first thing after restart.
        assert len(in_state(state, step)) == 1
    elif step in ("running", "hook"):
        [name] = in_state(state, "running")
        assert journal(state)[name]["attempts"] >= 1
    elif step == "signal":
        # The held request was dropped with its client: finished, not signalled, anywhere.
        pending = in_state(state, "finished")
        assert pending and all(signals_for(cloud, n) == [] for n in pending)
    else:
        assert in_state(state, "finished") == []
