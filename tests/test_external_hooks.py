"""Third-party heat-config hooks dropped into --hooks-dir run unchanged (SPEC section 3)."""

import json

from tests.support.agent import deployment, run_agent, signals_for

HOOK = """#!/usr/bin/env python3
import json, sys
c = json.load(sys.stdin)
inputs = {i["name"]: i.get("value") for i in c["inputs"]}
json.dump({"deploy_stdout": "configured " + c["config"]["what"],
           "deploy_stderr": "",
           "deploy_status_code": 0,
           "greeting": "hello " + inputs["who"],
           "saw_options": c.get("options", "absent")}, sys.stdout)
"""

LYING_HOOK = """#!/bin/sh
cat > /dev/null
echo '{"deploy_stdout": "all good", "deploy_stderr": "", "deploy_status_code": 0}'
echo "crashed after printing" >&2
exit 7
"""


def test_third_party_hook_gets_json_and_its_reply_is_signalled(fakecloud, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "frobnicate").write_text(HOOK)
    (hooks / "frobnicate").chmod(0o755)
    (hooks / "liar").write_text(LYING_HOOK)
    (hooks / "liar").chmod(0o755)
    dep = deployment(fakecloud, "frob", {"what": "the frobnicator"}, group="frobnicate",
                     inputs=[{"name": "who", "value": "heat"}], outputs=["greeting"])
    liar = deployment(fakecloud, "liar", "", group="liar")
    fakecloud.set_metadata({"deployments": [dep, liar]})

    proc = run_agent(tmp_path / "state", "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url, "--hooks-dir", str(hooks))
    assert proc.returncode == 1  # the liar failed
    [body] = signals_for(fakecloud, "frob")
    assert body == {"deploy_stdout": "configured the frobnicator", "deploy_stderr": "",
                    "deploy_status_code": 0, "greeting": "hello heat", "saw_options": None}
    [lie] = signals_for(fakecloud, "liar")
    assert lie["deploy_status_code"] == 7  # the exit code is the truth
    assert "exited with status 7" in lie["deploy_stderr"]


def test_hooks_dir_takes_precedence_over_builtin(fakecloud, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "script").write_text('#!/bin/sh\ncat >/dev/null\necho \'{"deploy_stdout": "mine"}\'\n')
    (hooks / "script").chmod(0o755)
    dep = deployment(fakecloud, "s", "#!/bin/sh\necho builtin\n")
    fakecloud.set_metadata({"deployments": [dep]})
    proc = run_agent(tmp_path / "state", "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url, "--hooks-dir", str(hooks))
    assert proc.returncode == 0, proc.stderr
    assert signals_for(fakecloud, "s")[0]["deploy_stdout"] == "mine"


def test_builtin_script_hook_standalone(tmp_path):
    import os
    import subprocess
    import sys
    dep = {"id": "abc", "name": "x", "group": "script", "options": None,
           "config": "#!/bin/sh\necho \"v=$v\"\nprintf 7 > $heat_outputs_path.out\n",
           "inputs": [{"name": "v", "value": 3}], "outputs": [{"name": "out"}]}
    env = dict(os.environ, HEAT_SCRIPT_WORKING=str(tmp_path / "w"),
               HEAT_SCRIPT_OUTPUTS=str(tmp_path / "o"))
    out = subprocess.run([sys.executable, "-m", "guestagent.hooks.script"], input=json.dumps(dep),
                         capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out) == {"deploy_stdout": "v=3\n", "deploy_stderr": "",
                               "deploy_status_code": 0, "out": "7"}
    assert (tmp_path / "w" / "abc").exists() and (tmp_path / "o" / "abc.out").exists()


ECHO_HOOK = """#!/bin/sh
# Keeps its stdin byte for byte, and replies the way some old hooks did: status as a string.
cat > "$0.stdin"
printf '%s' '{"zeta": [1, {"b": 2}], "deploy_status_code": "0", "deploy_stdout": "ok", \
"deploy_stderr": null, "alpha": "last"}'
"""


def test_hook_sees_deployment_as_sent_and_reply_reaches_heat_as_written(fakecloud, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "echo").write_text(ECHO_HOOK)
    (hooks / "echo").chmod(0o755)
    bare = deployment(fakecloud, "bare", {"k": "v"}, group="echo")
    del bare["options"]  # Heat sent none: the hook must not see one added
    null = deployment(fakecloud, "null", "x", group="echo", transport="TEMP_URL_SIGNAL")
    fakecloud.set_metadata({"deployments": [bare, null]})

    proc = run_agent(tmp_path / "state", "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url, "--hooks-dir", str(hooks))
    assert proc.returncode == 0, proc.stderr
    # The last run was `null`: its stdin is what heat-config gave hooks, json.dumps(deployment).
    assert (hooks / "echo.stdin").read_bytes() == json.dumps(null).encode()
    assert json.loads((hooks / "echo.stdin").read_text())["options"] is None
    for name in ("bare", "null"):
        [body] = signals_for(fakecloud, name)
        # Every key, its value and its place as the hook printed them.
        assert list(body.items()) == [("zeta", [1, {"b": 2}]), ("deploy_status_code", "0"),
                                      ("deploy_stdout", "ok"), ("deploy_stderr", None),
                                      ("alpha", "last")]


def test_hook_stdin_without_options_has_none(fakecloud, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "echo").write_text(ECHO_HOOK)
    (hooks / "echo").chmod(0o755)
    bare = deployment(fakecloud, "bare", {"k": "v"}, group="echo")
    del bare["options"]
    fakecloud.set_metadata({"deployments": [bare]})
    proc = run_agent(tmp_path / "state", "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url, "--hooks-dir", str(hooks))
    assert proc.returncode == 0, proc.stderr
    assert (hooks / "echo.stdin").read_bytes() == json.dumps(bare).encode()
    assert "options" not in json.loads((hooks / "echo.stdin").read_text())
