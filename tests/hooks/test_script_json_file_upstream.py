"""The script and json-file hooks' files, environment and replies pinned to heat-agents'
hook-script and hook-json-file (the deployments are the ones heat-agents' tests feed)."""

from __future__ import annotations

import json

from tests.hooks.conftest import run_hook

# The script records how it was started: argv, working directory, its inputs' environment.
RECORDER = """#!/bin/sh
printf '%s\\n' "$0" "$#" "$(pwd)" "$foo" "$another" "$structured" "$heat_outputs_path"
echo "to stderr" >&2
printf 'output 1' > "$heat_outputs_path.first_output"
exit 3
"""


def test_script_file_environment_outputs_and_reply(tmp_path):
    work, outputs = tmp_path / "work", tmp_path / "outputs"
    deployment = {"id": "1234", "name": "fake_resource_name", "group": "script",
                  "inputs": [{"name": "foo", "value": "bar"},
                             {"name": "another", "value": "input"},
                             {"name": "structured", "value": {"a": [1, 2]}}],
                  "outputs": [{"name": "first_output"}, {"name": "second_output"}],
                  "config": RECORDER}
    reply = run_hook("script", deployment, {"HEAT_SCRIPT_WORKING": str(work),
                                            "HEAT_SCRIPT_OUTPUTS": str(outputs)})
    # Started as <working>/<id> with no arguments, in the working directory.
    lines = [str(work / "1234"), "0", str(work), "bar", "input", '{"a": [1, 2]}',
             str(outputs / "1234")]
    assert reply == {"deploy_stdout": "\n".join(lines) + "\n", "deploy_stderr": "to stderr\n",
                     "deploy_status_code": 3, "first_output": "output 1"}
    assert (work / "1234").read_text() == RECORDER


def test_json_file_reply_and_file_as_upstream(tmp_path):
    target = tmp_path / "conf" / "app.json"
    # No inputs and no options, as in heat-agents' test.
    deployment = {"id": "test_json_file", "name": "fake_resource_name", "group": "json-file",
                  "config": {str(target): {"command": "foo"}}}
    reply = run_hook("json_file", deployment, {})
    assert reply == {"deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0}
    assert target.read_text() == '{\n    "command": "foo"\n}'
    json.loads(target.read_text())


def test_json_file_without_id_is_named_by_name(tmp_path):
    target = tmp_path / "noid.json"
    reply = run_hook("json_file", {"name": "named", "group": "json-file",
                                   "config": {str(target): [1]}}, {})
    assert reply["deploy_status_code"] == 0, reply["deploy_stderr"]
    assert json.loads(target.read_text()) == [1]
