"""Bad input: each gives a clear error or a correct result, the others still run, and nothing
is written outside the state directory."""

import os

import pytest

from guestagent import capture
from tests.support.agent import deployment, run_agent, signals_for

ARGS = ("--collectors", "request")


def once(cloud, state):
    return run_agent(state, *ARGS, "--request-metadata-url", cloud.metadata_url)


def test_malformed_document_is_reported_and_last_good_copy_kept(fakecloud, tmp_path):
    state = tmp_path / "state"
    runs = tmp_path / "runs"
    good = deployment(fakecloud, "good", f"#!/bin/sh\necho x >> {runs}\n")
    fakecloud.set_metadata(b'{"deployments": [')
    proc = once(fakecloud, state)
    assert proc.returncode == 1  # the source served an invalid document (README, exit codes)
    assert "source request" in proc.stderr and "not JSON" in proc.stderr

    fakecloud.set_metadata({"deployments": [good]})
    assert once(fakecloud, state).returncode == 0
    fakecloud.set_metadata(b"<html>oops</html>")
    proc = once(fakecloud, state)
    assert proc.returncode == 1
    assert "keeping its last good copy" in proc.stderr
    assert runs.read_text() == "x\n"  # not re-run, not dropped
    assert len(fakecloud.signals) == 1


def test_deployments_not_a_list(fakecloud, tmp_path):
    fakecloud.set_metadata({"deployments": {"id": "x"}})
    proc = once(fakecloud, tmp_path / "state")
    assert proc.returncode == 1
    assert "field 'deployments': must be a list" in proc.stderr
    assert "source failed: request: not a valid document: field 'deployments': must be a " \
        "list, not dict" in proc.stderr


def test_missing_fields_unknown_group_each_fail_alone(fakecloud, tmp_path):
    runs = tmp_path / "runs"
    ok = deployment(fakecloud, "fine", f"#!/bin/sh\necho ok >> {runs}\n")
    no_id = deployment(fakecloud, "no-id", "#!/bin/sh\n")
    del no_id["id"]
    no_group = deployment(fakecloud, "no-group", "#!/bin/sh\n")
    del no_group["group"]
    no_config = deployment(fakecloud, "no-config", "#!/bin/sh\n")
    del no_config["config"]
    unknown = deployment(fakecloud, "exotic", "x", group="frobnicate")
    bad_inputs = deployment(fakecloud, "bad-inputs", "#!/bin/sh\n")
    bad_inputs["inputs"].insert(0, {"value": "no name"})
    fakecloud.set_metadata({"deployments": [no_id, no_group, no_config, unknown, bad_inputs,
                                            ok, "not an object"]})

    proc = once(fakecloud, tmp_path / "state")
    assert proc.returncode == 1
    assert runs.read_text() == "ok\n"
    assert signals_for(fakecloud, "fine")[0]["deploy_status_code"] == 0
    expect = {"no-id": "field 'id'", "no-group": "field 'group'", "no-config": "field 'config'",
              "exotic": "no hook for group 'frobnicate'", "bad-inputs": "field 'inputs[0].name'"}
    for name, message in expect.items():
        [body] = signals_for(fakecloud, name)
        assert body["deploy_status_code"] != 0, name
        assert message in body["deploy_stderr"], (name, body)
        assert name in body["deploy_stderr"] or name == "exotic"
    assert "deployments[6]" in proc.stderr  # the non-object is named by position


@pytest.mark.parametrize("inputs", [1, "text", {"name": "deploy_server_id"}, True])
def test_inputs_not_a_list_fail_that_deployment_only(fakecloud, tmp_path, inputs):
    """Found by the fuzzer: `inputs: 1` used to stop the whole pass (the server-id bookkeeping
    iterated it), so no deployment ran while it was in the metadata."""
    runs = tmp_path / "runs"
    ok = deployment(fakecloud, "fine", f"#!/bin/sh\necho ok >> {runs}\n")
    odd = deployment(fakecloud, "odd-inputs", "#!/bin/sh\n")
    odd["inputs"] = inputs  # its signal credentials went with them: it cannot be signalled
    fakecloud.set_metadata({"deployments": [odd, ok]})
    proc = once(fakecloud, tmp_path / "state")
    assert proc.returncode == 1
    assert runs.read_text() == "ok\n"
    assert signals_for(fakecloud, "fine")[0]["deploy_status_code"] == 0
    assert "odd-inputs" in proc.stderr and "field 'inputs'" in proc.stderr, proc.stderr


def test_null_options_and_typed_inputs(fakecloud, tmp_path):
    script = """#!/bin/sh
for v in n b f j l nul s; do eval "printf '%s=[%s]\\n' $v \\"\\$$v\\""; done
"""
    inputs = [{"name": "n", "type": "Number", "value": 42},
              {"name": "b", "type": "Boolean", "value": True},
              {"name": "f", "type": "Number", "value": 1.5},
              {"name": "j", "type": "Json", "value": {"a": [1, 2]}},
              {"name": "l", "type": "CommaDelimitedList", "value": ["x", "y"]},
              {"name": "nul", "type": "String", "value": None},
              {"name": "s", "type": "String", "default": "from default"}]
    dep = deployment(fakecloud, "typed", script, inputs=inputs, options=None)
    fakecloud.set_metadata({"deployments": [dep]})
    assert once(fakecloud, tmp_path / "state").returncode == 0
    [body] = signals_for(fakecloud, "typed")
    assert body["deploy_stdout"].splitlines() == [
        "n=[42]", "b=[true]", "f=[1.5]", 'j=[{"a": [1, 2]}]', 'l=[["x", "y"]]', "nul=[]",
        "s=[from default]"]


def test_hook_printing_5mb_is_trimmed_in_the_signal_and_kept_on_disk(fakecloud, tmp_path):
    script = "#!/bin/sh\nhead -c 5000000 /dev/zero | tr '\\0' x\necho\necho THE-END\n"
    dep = deployment(fakecloud, "chatty", script)
    fakecloud.set_metadata({"deployments": [dep]})
    state = tmp_path / "state"
    assert once(fakecloud, state).returncode == 0
    signal_bodies = [r for r in fakecloud.requests if "/signal/" in r.path]
    assert len(signal_bodies[0].body) <= 1048576
    [body] = signals_for(fakecloud, "chatty")
    out = body["deploy_stdout"]
    assert out.startswith("xxxx") and out.endswith("THE-END\n")
    assert out.count("guestagent cut") == 1  # cut once: the capture's own cut folded in
    dropped = 5000009 - capture.HEAD - capture.TAIL
    assert f"the capture had already dropped {dropped} bytes" in out
    # On disk: the first and last MiB and one line saying how much is not there.
    assert (state / "deployments" / dep["id"] / "stdout").stat().st_size == \
        capture.HEAD + capture.TAIL + len(capture.marker(dropped))


def snapshot(root):
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


def test_hostile_names_stay_inside_the_state_dir(fakecloud, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    state = outside / "inner" / "state"
    hostile = deployment(fakecloud, "../../../x", "#!/bin/sh\necho hi\n",
                         dep_id="../../../evil-id", outputs=["result"])
    bad_output = deployment(fakecloud, "bad-output", "#!/bin/sh\n", outputs=["../../../../x"])
    bad_group = deployment(fakecloud, "bad-group", "#!/bin/sh\n", group="../../../bin/sh")
    fakecloud.set_metadata({"deployments": [hostile, bad_output, bad_group]})
    before = snapshot(tmp_path)

    proc = once(fakecloud, state)
    assert proc.returncode == 1
    new = snapshot(tmp_path) - before
    assert new and all(path.startswith(str(state) + "/") for path in new), new
    assert any(body.get("deploy_stdout") == "hi\n" for _, _, body in fakecloud.signals)
    assert "may not contain '/'" in signals_for(fakecloud, "bad-output")[0]["deploy_stderr"]
    assert "no hook for group" in signals_for(fakecloud, "bad-group")[0]["deploy_stderr"]


def test_state_files_are_private(fakecloud, tmp_path):
    dep = deployment(fakecloud, "secretive", "#!/bin/sh\n", transport="HEAT_SIGNAL")
    fakecloud.set_metadata({"deployments": [dep]})
    state = tmp_path / "state"
    assert once(fakecloud, state).returncode == 0
    for directory, _dirs, files in os.walk(state):
        assert os.stat(directory).st_mode & 0o077 == 0, directory
        for name in files:
            path = os.path.join(directory, name)
            if directory.endswith("/outputs"):
                continue  # written by the tool itself, inside a 0700 directory
            assert os.stat(path).st_mode & 0o077 == 0, path
    password = next(i["value"] for i in dep["inputs"] if i["name"] == "deploy_password")
    # Once signalled, the stored deployment (with its credentials) is gone; only the metadata
    # copies (the source cache and the OS_CONFIG_FILES for refresh scripts, 0600) keep it.
    copies = (str(state / "sources"), str(state / "os-collect-config"))
    leftovers = [p for p in snapshot(state) if not p.startswith(copies)
                 and password in open(p, errors="replace").read()]
    assert leftovers == []


def test_refused_signal_is_final_and_drops_its_credentials(fakecloud, tmp_path):
    dep = deployment(fakecloud, "refused", "#!/bin/sh\ntrue\n", transport="HEAT_SIGNAL")
    fakecloud.set_metadata({"deployments": [dep]})
    fakecloud.fail("/heat/", 404)
    state = tmp_path / "state"
    proc = once(fakecloud, state)
    assert proc.returncode == 1 and "signal REFUSED" in proc.stderr
    signal_posts = [r for r in fakecloud.requests if r.path.endswith("/signal")]
    assert len(signal_posts) == 1  # a 4xx is not retried
    password = next(i["value"] for i in dep["inputs"] if i["name"] == "deploy_password")
    stored = (state / "deployments" / dep["id"] / "deployment.json").read_text()
    assert password not in stored and dep["id"] in stored
    once(fakecloud, state)
    assert len([r for r in fakecloud.requests if r.path.endswith("/signal")]) == 1


@pytest.mark.parametrize("timeout", [1e999, float("nan"), -5, 0, 86401, True, "60"])
def test_options_timeout_out_of_range_fails_that_deployment(timeout):
    from guestagent import deployments

    dep = deployments.parse_one({"id": "t1", "name": "t", "group": "script", "config": "",
                                 "options": {"timeout": timeout}})
    assert dep.problem is not None and dep.problem.field == "options.timeout"
    assert "from 0.1 to 86400" in str(dep.problem)
    ok = deployments.parse_one({"id": "t2", "group": "script", "config": "",
                                "options": {"timeout": 600}})
    assert ok.problem is None and ok.timeout == 600.0
