"""Crash safety with real processes: kill -9 mid-hook, signal endpoint outages, restarts."""

import json
import os
import signal

from tests.support.agent import deployment, run_agent, signals_for, start_agent
from tests.support.wait import wait_until


def blocking_script(tmp_path):
    """A hook that records each run and, until released, blocks like a long deployment."""
    return f"""#!/bin/sh
echo run >> {tmp_path}/runs
if [ ! -e {tmp_path}/release ]; then
  echo $$ > {tmp_path}/hook.pid
  exec sleep 600
fi
printf done > "$heat_outputs_path.result"
"""


def kill_mid_hook(state, tmp_path, args):
    agent = start_agent(state, "--once", *args)
    wait_until(lambda: (tmp_path / "hook.pid").exists(), what="hook to start")
    agent.kill()  # kill -9: no chance to clean up
    agent.wait(timeout=30)
    # A reboot takes the hook down too.
    os.killpg(int((tmp_path / "hook.pid").read_text()), signal.SIGKILL)
    (tmp_path / "hook.pid").unlink()


def test_kill_9_while_hook_runs_reruns_and_signals_once(fakecloud, tmp_path):
    dep = deployment(fakecloud, "slow", blocking_script(tmp_path), outputs=["result"])
    fakecloud.set_metadata({"deployments": [dep]})
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    state = tmp_path / "state"

    kill_mid_hook(state, tmp_path, args)
    journal = json.loads((state / "deployments" / dep["id"] / "journal.json").read_text())
    assert journal["state"] == "running" and journal["attempts"] == 1
    assert fakecloud.signals == []

    (tmp_path / "release").touch()
    proc = run_agent(state, *args)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs").read_text() == "run\nrun\n"
    [body] = signals_for(fakecloud, "slow")
    assert body["deploy_status_code"] == 0 and body["result"] == "done"
    # And nothing more on a further pass.
    assert run_agent(state, *args).returncode == 0
    assert len(fakecloud.signals) == 1


def test_interrupted_too_often_is_failed_and_signalled(fakecloud, tmp_path):
    dep = deployment(fakecloud, "cursed", blocking_script(tmp_path))
    fakecloud.set_metadata({"deployments": [dep]})
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    state = tmp_path / "state"
    for _ in range(3):  # the default max_attempts
        kill_mid_hook(state, tmp_path, args)

    proc = run_agent(state, *args)
    assert proc.returncode == 1
    assert (tmp_path / "runs").read_text().count("run") == 3  # not run a fourth time
    [body] = signals_for(fakecloud, "cursed")
    assert body["deploy_status_code"] != 0
    assert "interrupted 3 times" in body["deploy_stderr"]


def test_signal_endpoint_down_then_back_across_restart(fakecloud, tmp_path):
    runs = tmp_path / "runs"
    dep = deployment(fakecloud, "patient", f"#!/bin/sh\necho once >> {runs}\n")
    fakecloud.set_metadata({"deployments": [dep]})
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    state = tmp_path / "state"
    fakecloud.fail("/cfn/v1/signal", 503)

    first = run_agent(state, *args)
    assert first.returncode == 1
    assert "signal not delivered" in first.stderr and "HTTP 503" in first.stderr
    attempts = [r for r in fakecloud.requests if r.path.startswith("/cfn/v1/signal")]
    assert len(attempts) == 3  # retried with backoff within the pass
    # A restart while still down: the result waits in the outbox, the hook is not re-run.
    assert run_agent(state, *args).returncode == 1

    fakecloud.recover("/cfn/v1/signal")
    third = run_agent(state, *args)
    assert third.returncode == 0, third.stderr
    assert runs.read_text() == "once\n"
    [body] = signals_for(fakecloud, "patient")
    assert body["deploy_status_code"] == 0


def test_daemon_delivers_when_endpoint_recovers_and_stops_on_sigterm(fakecloud, tmp_path):
    dep = deployment(fakecloud, "later", "#!/bin/sh\necho hi\n")
    fakecloud.set_metadata({"deployments": [dep]})
    fakecloud.fail("/cfn/v1/signal", 500)
    state = tmp_path / "state"
    daemon = start_agent(state, "--collectors", "request", "--request-metadata-url",
                         fakecloud.metadata_url, log=tmp_path / "daemon.log")
    try:
        fakecloud.wait_for(lambda: any(r.path.startswith("/cfn/v1/signal")
                                       for r in fakecloud.requests), timeout=30)
        fakecloud.recover("/cfn/v1/signal")
        fakecloud.wait_for(lambda: len(fakecloud.signals) == 1, timeout=60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert signals_for(fakecloud, "later")[0]["deploy_stdout"] == "hi\n"


def test_sigterm_during_hook_stops_it_and_it_runs_again(fakecloud, tmp_path):
    dep = deployment(fakecloud, "interrupted", blocking_script(tmp_path))
    fakecloud.set_metadata({"deployments": [dep]})
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    state = tmp_path / "state"
    daemon = start_agent(state, *args, log=tmp_path / "daemon.log")
    wait_until(lambda: (tmp_path / "hook.pid").exists(), what="hook to start")
    hook_pid = int((tmp_path / "hook.pid").read_text())
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    # The hook's whole group is gone and nothing was signalled as failed.
    wait_until(lambda: not _alive(hook_pid), timeout=10, what="hook to be killed")
    assert fakecloud.signals == []

    (tmp_path / "release").touch()
    assert run_agent(state, *args).returncode == 0
    assert len(signals_for(fakecloud, "interrupted")) == 1


def test_a_child_started_as_the_agent_stops_is_stopped_at_once(tmp_path, monkeypatch):
    """The race SIGTERM can lose: terminate_all looks at the running children just before a
    hook's group is registered. That child must not run on (and hold the daemon) until its
    timeout: run() sees the process is stopping and stops it."""
    import time

    from guestagent import process

    monkeypatch.setattr(process, "_stopping", False)  # restored: later tests run children
    process.terminate_all(grace=1.0)  # nothing runs yet: only marks the process as stopping
    started = time.monotonic()
    result = process.run(["sleep", "30"], stdout_path=tmp_path / "out",
                         stderr_path=tmp_path / "err", timeout=120)
    assert result.status_code == 143 and time.monotonic() - started < 10


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"
