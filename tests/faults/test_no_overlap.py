"""kill -9 of the agent while a hook runs: the hook survives in its own session, and the
restarted agent stops it before running the deployment again, so two copies never overlap."""

import json
import os
import signal
import subprocess

from tests.support.agent import agent_argv, start_agent
from tests.support.wait import wait_until

SCRIPT = """#!/bin/bash
exec 9>>{lock}
flock -n 9 || echo "OVERLAP $$" >> {log}
echo "start $$" >> {log}
if [ ! -e {first} ]; then
  touch {first}
  sleep 600
fi
echo "end $$" >> {log}
"""


def test_restart_after_kill_9_stops_the_orphaned_hook_first(tmp_path):
    log, lock, first = tmp_path / "log", tmp_path / "lock", tmp_path / "first-run"
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.json").write_text(json.dumps({"deployments": [{
        "id": "dep-1", "name": "slow", "group": "script",
        "config": SCRIPT.format(lock=lock, log=log, first=first)}]}))
    state = tmp_path / "state"
    args = ("--collectors", "local", "--local-path", str(data))
    agent = start_agent(state, "--once", *args)
    try:
        wait_until(lambda: log.exists() and "start" in log.read_text(), timeout=60)
    finally:
        agent.kill()  # SIGKILL: no cleanup of the hook's process group
        agent.wait()
    orphan = int(log.read_text().split()[1])
    os.kill(orphan, 0)  # the first run's script still runs, in its own session
    entry = json.loads((state / "deployments" / "dep-1" / "journal.json").read_text())
    assert entry["state"] == "running" and entry["hook_pgid"] == orphan

    rerun = subprocess.run(agent_argv(state, "--once", *args), capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "earlier run of the agent left running" in rerun.stderr
    lines = log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("OVERLAP")], lines
    assert [line.split()[0] for line in lines] == ["start", "start", "end"]
    try:
        os.kill(orphan, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
    entry = json.loads((state / "deployments" / "dep-1" / "journal.json").read_text())
    assert (entry["state"], entry["attempts"], entry["hook_pgid"]) == ("finished", 2, None) \
        or (entry["state"], entry["attempts"]) == ("signalled", 2)


def test_a_group_from_another_boot_or_a_reused_pid_is_left_alone(tmp_path):
    from guestagent import process

    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        mark = process.mark_group(sleeper.pid)
        assert not process.stop_leftover_group(process.GroupMark(mark.pgid, mark.started,
                                                                 "another-boot"))
        assert not process.stop_leftover_group(process.GroupMark(mark.pgid, mark.started + 1,
                                                                 mark.boot_id))
        assert sleeper.poll() is None
        assert process.stop_leftover_group(mark)
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
    finally:
        sleeper.kill()
