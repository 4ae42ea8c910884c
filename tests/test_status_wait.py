"""`guestagent status --wait`: the verdict and its exit code, against real agent runs."""

import json
import signal
import subprocess
import sys
import time

from tests.support.agent import REPO, _env, deployment, run_agent, start_agent
from tests.support.wait import wait_until


def status(state, *args, timeout=60):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "guestagent", "status", "--config", "/dev/null",
                           "--state-dir", str(state), *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(None), cwd=REPO)
    return proc, time.monotonic() - started


def args(cloud):
    return ("--collectors", "request", "--request-metadata-url", cloud.metadata_url)


def test_all_good_is_0_and_a_failure_is_1(fakecloud, tmp_path):
    state = tmp_path / "state"
    fakecloud.set_metadata({"deployments": [deployment(fakecloud, "fine", "#!/bin/sh\n")]})
    run_agent(state, *args(fakecloud))
    proc, took = status(state, "--wait", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["verdict"] == "ok" and report["reasons"] == []
    assert [d["signal"] for d in report["deployments"]] == ["delivered"]
    assert not report["agent_running"] and took < 10

    fakecloud.set_metadata({"deployments": [
        deployment(fakecloud, "fine", "#!/bin/sh\n"),
        deployment(fakecloud, "broken", "#!/bin/sh\necho nope >&2; exit 4\n")]})
    run_agent(state, *args(fakecloud))
    proc, _ = status(state, "--wait", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["verdict"] == "failed"
    assert any("broken" in r and "status 4" in r and "nope" in r for r in report["reasons"])


def test_pending_signal_without_agent_is_2_at_once(fakecloud, tmp_path):
    state = tmp_path / "state"
    fakecloud.set_metadata({"deployments": [deployment(fakecloud, "unsent", "#!/bin/sh\n")]})
    fakecloud.fail("/cfn/v1/signal", 503)
    run_agent(state, *args(fakecloud))
    proc, took = status(state, "--wait", "--timeout", "300")
    assert proc.returncode == 2
    assert took < 10  # no agent running: nothing to wait for, never hangs
    assert "unsent" in proc.stdout and "signal pending" in proc.stdout
    assert "no agent is running" in proc.stdout


def test_waits_for_the_daemon_then_0_and_times_out_with_2(fakecloud, tmp_path):
    state = tmp_path / "state"
    release = tmp_path / "release"
    script = f"#!/bin/sh\nwhile [ ! -e {release} ]; do sleep 0.05; done\n"
    fakecloud.set_metadata({"deployments": [deployment(fakecloud, "slow", script)]})
    daemon = start_agent(state, *args(fakecloud), log=tmp_path / "daemon.log")
    try:
        wait_until(lambda: (state / "lock").exists() and any(
            '"running"' in p.read_text() for p in state.glob("deployments/*/journal.json")),
            what="the hook to start")
        proc, took = status(state, "--wait", "--timeout", "1")
        assert proc.returncode == 2 and 1 <= took < 10
        assert "slow" in proc.stdout and "running" in proc.stdout

        waiter = subprocess.Popen([sys.executable, "-m", "guestagent", "status", "--config",
                                   "/dev/null", "--state-dir", str(state), "--wait",
                                   "--timeout", "60", "--json"], stdout=subprocess.PIPE,
                                  text=True, env=_env(None), cwd=REPO)
        time.sleep(0.5)  # let it start waiting: it must not return while the hook runs
        assert waiter.poll() is None
        release.touch()
        out, _ = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, out
        assert json.loads(out)["deployments"][0]["signal"] == "delivered"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)


def test_unreachable_source_is_2(fakecloud, tmp_path):
    state = tmp_path / "state"
    fakecloud.set_metadata({"deployments": []})
    run_agent(state, *args(fakecloud))
    fakecloud.fail("/metadata", 500)
    run_agent(state, *args(fakecloud))
    proc, _ = status(state, "--wait", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 2
    assert any("source request unreachable" in r and "HTTP 500" in r for r in report["reasons"])

    fakecloud.recover()
    run_agent(state, *args(fakecloud))
    assert status(state, "--wait")[0].returncode == 0
