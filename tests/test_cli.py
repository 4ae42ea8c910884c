"""The command line as an operator meets it, run as real processes: --help and `help CMD`,
`status` with failing sources, the first-pass wait, the JSON schema, a closed pipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from guestagent import cli
from guestagent.status import agent_running
from tests.support.agent import REPO, _env, run_agent, start_agent
from tests.support.wait import wait_until

SCRIPT = {"id": "5b1e4c3a-0000-4000-8000-000000000001", "name": "hello", "group": "script",
          "config": "#!/bin/sh\necho hi\n", "inputs": [
              {"name": "deploy_signal_transport", "value": "NO_SIGNAL"}]}


def guestagent(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guestagent", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, env=_env(None),
                          cwd=REPO, **kw)


def status(state, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return guestagent("status", "--config", "/dev/null", "--state-dir", str(state), *args,
                      timeout=timeout)


def local_data(tmp_path, *deployments: dict):
    data = tmp_path / "local-data"
    data.mkdir(mode=0o700, exist_ok=True)
    (data / "deployments.json").write_text(json.dumps({"deployments": list(deployments)}))
    return ("--collectors", "local", "--local-path", str(data))


def test_help_lists_every_command_and_help_cmd_shows_each():
    top = guestagent("--help")
    assert top.returncode == 0
    for name in list(cli.PARSERS) + ["help"]:
        assert any(line.split()[:1] == [name] for line in top.stdout.splitlines()), name
    for name in cli.PARSERS:
        shown = guestagent("help", name)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"usage: guestagent {name}")
        assert shown.stdout == guestagent(name, "--help").stdout
    assert "exit codes: 0 shown" in guestagent("help", "status").stdout
    assert guestagent("help").stdout == top.stdout
    wrong = guestagent("help", "nonsense")
    assert wrong.returncode == 2 and "no command 'nonsense'" in wrong.stderr


def test_status_shows_failing_sources_with_their_error(tmp_path):
    state = tmp_path / "state"
    # Nothing listens on port 9 of loopback: the request source fails with its reason.
    run_agent(state, "--collectors", "request", "--request-metadata-url",
              "http://127.0.0.1:9/metadata")
    shown = status(state)
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    at = lines.index("SOURCES FAILING")
    assert lines[at + 1].split()[0] == "request" and "127.0.0.1:9" in lines[at + 1]
    report = json.loads(status(state, "--json").stdout)
    assert report["schema"] == 1 and report["first_pass_done"] is True
    [failing] = report["sources_failing"]
    assert failing["source"] == "request" and "127.0.0.1:9" in failing["error"]
    waited = status(state, "--wait", "--json")
    assert waited.returncode == 2 and json.loads(waited.stdout)["verdict"] == "degraded"


def test_wait_without_a_state_dir_times_out_not_started(tmp_path):
    shown = status(tmp_path / "absent", "--wait", "--timeout", "0.5")
    assert shown.returncode == 2
    assert f"not started yet: no state directory at {tmp_path / 'absent'}" in shown.stdout
    assert "verdict: not-started" in shown.stdout
    plain = status(tmp_path / "absent")
    assert plain.returncode == 2 and "no state directory" in plain.stderr


def test_wait_waits_through_not_started_until_the_first_pass(tmp_path):
    state = tmp_path / "state"
    waiter = subprocess.Popen([sys.executable, "-m", "guestagent", "status", "--config",
                               "/dev/null", "--state-dir", str(state), "--wait", "--timeout",
                               "120", "--json"], stdout=subprocess.PIPE, text=True,
                              env=_env(None), cwd=REPO)
    try:
        # Had it not waited for the first pass, it would have said not-started (exit 2).
        done = run_agent(state, *local_data(tmp_path, SCRIPT))
        assert done.returncode == 0, done.stderr
        out, _ = waiter.communicate(timeout=120)
    finally:
        waiter.kill()
        waiter.wait()
    report = json.loads(out)
    assert waiter.returncode == 0, out
    assert report["verdict"] == "ok" and report["first_pass_done"] is True
    assert [d["state"] for d in report["deployments"]] == ["signalled"]


def test_health_from_an_earlier_boot_is_not_a_first_pass(tmp_path):
    state = tmp_path / "state"
    assert run_agent(state, *local_data(tmp_path, SCRIPT)).returncode == 0
    assert status(state, "--wait", "--timeout", "5").returncode == 0
    health = json.loads((state / "health.json").read_text())
    assert health["first_pass_done"] is True and health["boot_id"]
    health["boot_id"] = "0" * 32  # as after a reboot, before the new agent's first pass
    (state / "health.json").write_text(json.dumps(health))
    shown = status(state, "--wait", "--timeout", "0.5", "--json")
    report = json.loads(shown.stdout)
    assert shown.returncode == 2 and report["verdict"] == "not-started"
    assert report["reasons"] == [("not started yet: the agent has not completed its first "
                                  "pass since this boot")]
    assert [d["state"] for d in report["deployments"]] == ["signalled"]


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("analyze",)])
def test_a_closed_pipe_ends_quietly(tmp_path, args):
    state = tmp_path / "state"
    assert run_agent(state, *local_data(tmp_path, SCRIPT)).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before we write, as `| head` after its line
    try:
        proc = subprocess.run([sys.executable, "-m", "guestagent", *args, "--config",
                               "/dev/null", "--state-dir", str(state)], check=False, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60, env=_env(None),
                              cwd=REPO)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 0



def test_agent_exit_codes_are_as_help_states(tmp_path):
    top = guestagent("--help").stdout
    assert "0 ok; 1 a deployment, its signal or a source failed (--once)" in top
    assert "2 configuration or usage error, or the state\ndirectory unusable or locked" in top
    state = tmp_path / "state"
    assert run_agent(state, *local_data(tmp_path, SCRIPT)).returncode == 0
    failing = dict(SCRIPT, id="5b1e4c3a-0000-4000-8000-000000000002", name="bad",
                   config="#!/bin/sh\nexit 3\n")
    assert run_agent(state, *local_data(tmp_path, SCRIPT, failing)).returncode == 1
    assert guestagent("--no-such-option").returncode == 2
    daemon = start_agent(state, *local_data(tmp_path, SCRIPT))
    try:
        wait_until(lambda: agent_running(state), what="the daemon to hold the lock")
        locked = run_agent(state, *local_data(tmp_path, SCRIPT))
        assert locked.returncode == 2 and "another guestagent" in locked.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
