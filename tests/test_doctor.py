"""`guestagent doctor`: one line per check, each able to fail for the reason it names."""

import json
import os
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.agent import REPO, _env, deployment, run_agent


def doctor(state, *args, env=None):
    proc = subprocess.run([sys.executable, "-m", "guestagent", "doctor", "--config", "/dev/null",
                           "--state-dir", str(state), *args], check=False, capture_output=True,
                          text=True, timeout=120, env=_env(env), cwd=REPO)
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
                           str(config)], check=False, capture_output=True, text=True,
                          timeout=120, env=_env({"PATH": str(tmp_path / "empty")}), cwd=REPO)
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


def test_ansible_is_found_beside_the_agents_interpreter(tmp_path):
    # PATH without the virtualenv: the ansible hook still finds ansible-playbook beside
    # sys.executable, and so must doctor.
    checks = by_name(doctor(tmp_path / "state", "--json", env={"PATH": "/usr/bin:/bin"}))
    assert checks["hook ansible"]["status"] == "ok", checks["hook ansible"]
    assert checks["hook ansible"]["detail"] == \
        f"ansible-playbook at {os.path.dirname(sys.executable)}/ansible-playbook"
    missing = by_name(doctor(tmp_path / "state", "--json", env={
        "HEAT_ANSIBLE_CMD": "/nonexistent/ansible-playbook"}))["hook ansible"]
    assert missing["status"] == "warn" and "HEAT_ANSIBLE_CMD=" in missing["detail"]


def test_a_missing_directory_is_called_missing(tmp_path):
    state, data = tmp_path / "state", tmp_path / "local-data"
    proc = subprocess.run([sys.executable, "-m", "guestagent", "doctor", "--json", "--config",
                           "/dev/null", "--state-dir", str(state)], check=False,
                          capture_output=True, text=True, timeout=120,
                          env=_env(None), cwd=REPO)
    assert by_name(proc)[f"state dir {state}"]["detail"].startswith("missing")
    config = tmp_path / "agent.yaml"
    config.write_text(json.dumps({"collectors": ["local"], "state_dir": str(state),
                                  "local": {"path": [str(data)]}}))
    proc = subprocess.run([sys.executable, "-m", "guestagent", "doctor", "--json", "--config",
                           str(config)], check=False, capture_output=True, text=True,
                          timeout=120, env=_env(None), cwd=REPO)
    check = by_name(proc)["source local"]
    assert check["status"] == "warn" and check["detail"] == f"directory {data} is missing"


def test_docker_cmd_needs_the_sdk_and_an_engine(tmp_path, dockerd):
    gone = by_name(doctor(tmp_path / "s", "--json",
                          env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}))["hook docker-cmd"]
    assert gone["status"] == "warn" and f"no engine socket at {tmp_path}/no.sock" in gone["detail"]
    up = by_name(doctor(tmp_path / "s", "--json", env={"DOCKER_HOST": dockerd.host}))
    assert up["hook docker-cmd"]["status"] == "ok"
    assert f"at {dockerd.host}" in up["hook docker-cmd"]["detail"]


class _SkewedDate(BaseHTTPRequestHandler):
    """Answers every GET 404 with a Date two hours behind ours."""

    def date_time_string(self, timestamp=None):
        return formatdate(time.time() - 7200, usegmt=True)

    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_clock_is_compared_with_an_http_sources_date(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SkewedDate)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metadata"
        config = tmp_path / "agent.yaml"
        config.write_text(json.dumps({"collectors": ["request"], "state_dir": str(tmp_path / "s"),
                                      "request": {"metadata_url": url}}))
        proc = subprocess.run([sys.executable, "-m", "guestagent", "doctor", "--json",
                               "--config", str(config)], check=False, capture_output=True,
                              text=True, timeout=120, env=_env(None), cwd=REPO)
    finally:
        server.shutdown()
        server.server_close()
    clock = by_name(proc)["clock"]
    skew, _, rest = clock["detail"].partition(" s from the Date of ")
    assert clock["status"] == "fail" and 7199 <= int(skew) <= 7201, clock
    assert rest == f"request ({url})"
    assert proc.returncode == 1
