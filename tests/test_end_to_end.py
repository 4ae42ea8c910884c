"""`guestagent --once` over real HTTP on loopback: the request source, a real script hook,
and every signal transport, against the wire-faithful fake cloud."""

import json

import pytest

from tests.support.agent import deployment, run_agent, signals_for

SCRIPT = """#!/bin/bash
echo "hello $message"
echo "to stderr" >&2
printf '%s' "processed $message" > "$heat_outputs_path.result"
"""

TRANSPORTS = ["CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL", "ZAQAR_SIGNAL"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_script_deployment_is_signalled(fakecloud, tmp_path, transport):
    dep = deployment(fakecloud, "web", SCRIPT, transport=transport,
                     inputs=[{"name": "message", "value": "world"}], outputs=["result"])
    fakecloud.set_metadata({"deployments": [dep]})

    proc = run_agent(tmp_path / "state", "--collectors", "request",
                     "--request-metadata-url", fakecloud.metadata_url)

    assert proc.returncode == 0, proc.stderr
    [body] = signals_for(fakecloud, "web")
    assert body == {"deploy_stdout": "hello world\n", "deploy_stderr": "to stderr\n",
                    "deploy_status_code": 0, "result": "processed world"}


def test_signal_wire_details(fakecloud, tmp_path):
    deps = [deployment(fakecloud, t.lower(), "#!/bin/sh\ntrue\n", transport=t) for t in TRANSPORTS]
    fakecloud.set_metadata({"deployments": deps})
    proc = run_agent(tmp_path / "state", "--collectors", "request",
                     "--request-metadata-url", fakecloud.metadata_url)
    assert proc.returncode == 0, proc.stderr
    by_path = {}
    for rec in fakecloud.requests:
        by_path.setdefault(rec.path.split("/")[1], []).append(rec)
    cfn = [r for r in by_path["cfn"] if "/signal/" in r.path]
    assert [r.method for r in cfn] == ["POST"]
    assert cfn[0].headers["Content-Type"] == "application/json"
    swift = [r for r in by_path["swift"]]
    assert [r.method for r in swift] == ["PUT"]
    heat = [r for r in by_path["heat"] if r.path.endswith("/signal")]
    assert [r.method for r in heat] == ["POST"] and heat[0].headers["X-Auth-Token"]
    assert heat[0].path.endswith("/stacks/stack/00000000-0000-0000-0000-000000000001"
                                 "/resources/heat_signal/signal")
    zaqar = [r for r in by_path["zaqar"] if r.method == "POST"]
    assert zaqar[0].path.endswith("/v2/queues/queue-zaqar_signal/messages")
    assert zaqar[0].headers["Client-ID"] and zaqar[0].headers["X-Project-Id"]
    assert zaqar[0].json["messages"][0]["ttl"] == 600
    assert zaqar[0].json["messages"][0]["body"]["deploy_status_code"] == 0
    # The password never reaches the log.
    for dep in deps:
        for item in dep["inputs"]:
            if item["name"] == "deploy_password":
                assert item["value"] not in proc.stderr


def test_second_pass_runs_nothing_and_new_id_runs_alone(fakecloud, tmp_path):
    counter = tmp_path / "runs"
    script = f"#!/bin/sh\necho \"$deploy_resource_name\" >> {counter}\n"
    first = deployment(fakecloud, "first", script)
    fakecloud.set_metadata({"deployments": [first]})
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    state = tmp_path / "state"

    assert run_agent(state, *args).returncode == 0
    assert run_agent(state, *args).returncode == 0
    assert counter.read_text() == "first\n"
    assert len(fakecloud.signals) == 1
    # The second pass was a conditional GET answered 304.
    gets = [r for r in fakecloud.requests if r.path == "/metadata"]
    assert "If-None-Match" in gets[-1].headers

    second = deployment(fakecloud, "second", script)
    fakecloud.set_metadata({"deployments": [first, second]})
    assert run_agent(state, *args).returncode == 0
    assert counter.read_text() == "first\nsecond\n"
    assert [len(signals_for(fakecloud, n)) for n in ("first", "second")] == [1, 1]


def test_failing_script_exit_code_and_signal(fakecloud, tmp_path):
    dep = deployment(fakecloud, "broken", "#!/bin/sh\necho oops >&2\nexit 3\n")
    fakecloud.set_metadata({"deployments": [dep]})
    proc = run_agent(tmp_path / "state", "--collectors", "request",
                     "--request-metadata-url", fakecloud.metadata_url)
    assert proc.returncode == 1
    [body] = signals_for(fakecloud, "broken")
    assert body["deploy_status_code"] == 3 and body["deploy_stderr"] == "oops\n"
    assert "broken" in proc.stderr and "status 3" in proc.stderr


def test_status_reports_every_deployment(fakecloud, tmp_path):
    ok = deployment(fakecloud, "ok", "#!/bin/sh\ntrue\n")
    bad = deployment(fakecloud, "bad", "#!/bin/sh\nexit 2\n", transport="NO_SIGNAL")
    fakecloud.set_metadata({"deployments": [ok, bad]})
    state = tmp_path / "state"
    run_agent(state, "--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)

    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "guestagent", "status", "--json", "--config",
                          "/dev/null", "--state-dir", str(state)], capture_output=True, text=True,
                         check=True).stdout
    rows = {r["name"]: r for r in json.loads(out)["deployments"]}
    assert rows["ok"]["state"] == "signalled" and rows["ok"]["signal"] == "delivered"
    assert rows["ok"]["status_code"] == 0 and rows["ok"]["last_run"]
    assert rows["bad"]["status_code"] == 2 and rows["bad"]["signal"] == "not needed"
