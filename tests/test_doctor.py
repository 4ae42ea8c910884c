"""`guestagent doctor`: one line per check, each able to fail for the reason it names."""

import json
import os
import subprocess
import sys

from tests.support.agent import REPO, _env, deployment, run_agent


def doctor(state, *args, env=None):
    proc = subprocess.run([sys.executable, "-m", "guestagent", "doctor", "--config", "/dev/null",
                           "--state-dir", str(state), *args], capture_output=True, text=True,
                          timeout=120, env=_env(env), cwd=REPO)
    return proc


def by_name(proc):
    return {c["check"]: c for c in json.loads(proc.stdout)}


def test_healthy_machine(fakecloud, tmp_path):
    state = tmp_path / "state"
    fakecloud.set_metadata({"deployments": [deployment(fakecloud, "d", "#!/bin/sh\n")]})
    run_agent(state, "--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    proc = doctor(state, "--json", env={"PATH": "/usr/bin:/bin"})
    checks = by_name(proc)
    assert checks[f"state dir {state}"]["status"] == "ok"
    assert checks["clock"]["status"] == "ok"
    # No docker or puppet here unless installed: a warning, not a failure (nothing uses them).
    assert all(c["status"] in ("ok", "warn") for n, c in checks.items() if n.startswith("hook "))
    text = doctor(state).stdout.splitlines()
    assert any(line.startswith("OK    state dir") for line in text)


def test_each_check_fails_for_its_reason(fakecloud, tmp_path):
    state = tmp_path / "state"
    config = tmp_path / "agent.yaml"
    config.write_text(json.dumps({"collectors": ["request"], "state_dir": str(state),
                                  "request": {"metadata_url": fakecloud.metadata_url}}))
    fakecloud.set_metadata({"deployments": [
        deployment(fakecloud, "p", "notice('x')", group="puppet")]})
    run_agent(state, "--collectors", "request", "--request-metadata-url", fakecloud.metadata_url,
              env={"PATH": str(tmp_path / "empty")})
    os.chmod(state, 0o755)  # too open
    (state / "stray").write_text("x")
    os.chmod(state / "stray", 0o644)
    fakecloud.fail("/metadata", 503)

    proc = subprocess.run([sys.executable, "-m", "guestagent", "doctor", "--json", "--config",
                           str(config)], capture_output=True, text=True, timeout=120,
                          env=_env({"PATH": str(tmp_path / "empty")}), cwd=REPO)
    assert proc.returncode == 1
    checks = by_name(proc)
    state_check = checks[f"state dir {state}"]
    assert state_check["status"] == "fail"
    assert "mode 0755" in state_check["detail"] and "readable by others" in state_check["detail"]
    assert checks["source request"]["status"] == "fail"
    assert "HTTP 503" in checks["source request"]["detail"]
    # puppet missing and a known deployment needs it: a failure, not a warning.
    assert checks["hook puppet"]["status"] == "fail"
    assert "a known deployment uses this group" in checks["hook puppet"]["detail"]
    assert checks["hook docker-cmd"]["status"] == "warn"
