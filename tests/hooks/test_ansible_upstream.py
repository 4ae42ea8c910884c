"""The ansible hook's command line, environment, files and reply pinned to heat-agents' hook-ansible.

A recording fake stands in for ansible-playbook (tests/hooks/fake_tool.py). The one
deliberate difference: for the default `localhost,` inventory, the local connection and our
interpreter are set in the environment (tests/hooks/test_ansible.py runs the real tool).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.hooks.conftest import run_hook

DEPLOYMENT = {
    "id": "1234",
    "name": "fake_resource_name",
    "group": "ansible",
    "options": {},
    "inputs": [{"name": "foo", "value": "bar"}, {"name": "another", "value": "input"}],
    "config": "the ansible playbook",
}
REPLY = {"stdout": "ansible success", "stderr": "thing happened"}


@pytest.fixture
def dirs(tmp_path):
    return {"HEAT_ANSIBLE_WORKING": str(tmp_path / "work"),
            "HEAT_ANSIBLE_OUTPUTS": str(tmp_path / "outputs")}


def run(fake_tool, dirs, options=None, reply=REPLY, env=None):
    deployment = {**DEPLOYMENT, "options": options or {}}
    return run_hook("ansible", deployment, {**dirs, **fake_tool.env(reply),
                                            "HEAT_ANSIBLE_CMD": fake_tool.path, **(env or {})})


def expected(fake_tool, dirs, options=(), inventory="localhost,") -> list[str]:
    work = dirs["HEAT_ANSIBLE_WORKING"]
    return [fake_tool.path, "-i", inventory, *options, f"{work}/1234_playbook.yaml",
            "--extra-vars", f"@{work}/1234_variables.json"]


@pytest.mark.parametrize("options, flags", [
    ({}, []),
    ({"tags": "abc,def"}, ["--tags", "abc,def"]),
    ({"skip_tags": "abc,def"}, ["--skip-tags", "abc,def"]),
    ({"skip_tags": ""}, []),
    ({"tags": "abc,def", "skip_tags": "abc"}, ["--skip-tags", "abc", "--tags", "abc,def"]),
    ({"modulepath": "/opt/ansible:/usr/share/ansible"},
     ["--module-path", "/opt/ansible:/usr/share/ansible"]),
    ({"modulepath": "/opt/a", "tags": "abc,def"}, ["--module-path", "/opt/a", "--tags", "abc,def"]),
    ({"modulepath": "/opt/a", "skip_tags": "x"}, ["--module-path", "/opt/a", "--skip-tags", "x"]),
])
def test_argv_files_and_reply(fake_tool, dirs, options, flags):
    reply = run(fake_tool, dirs, options)
    assert reply == {"deploy_stdout": "ansible success", "deploy_stderr": "thing happened",
                     "deploy_status_code": 0}
    [argv] = fake_tool.argvs()
    assert argv == expected(fake_tool, dirs, flags)
    work, outputs = dirs["HEAT_ANSIBLE_WORKING"], dirs["HEAT_ANSIBLE_OUTPUTS"]
    # The variables file as upstream wrote it: same keys, order and separators.
    assert Path(f"{work}/1234_variables.json").read_text() == json.dumps(
        {"heat_config_id": "1234", "foo": "bar", "another": "input",
         "heat_outputs_path": f"{outputs}/1234"})
    assert Path(f"{work}/1234_playbook.yaml").read_text() == "the ansible playbook"


def test_callback_plugins_option_reaches_the_environment(fake_tool, dirs):
    run(fake_tool, dirs, {"callback_plugins": "/usr/lib/python/foo"})
    [call] = fake_tool.calls()
    assert call["env"]["ANSIBLE_CALLBACK_PLUGINS"] == "/usr/lib/python/foo"


def test_inventory_from_environment_is_used_as_is_without_local_connection(fake_tool, dirs):
    inventory = "localhost test_var=123,"
    run(fake_tool, dirs, env={"HEAT_ANSIBLE_INVENTORY": inventory})
    [argv] = fake_tool.argvs()
    assert argv == expected(fake_tool, dirs, inventory=inventory)
    assert "ANSIBLE_TRANSPORT" not in fake_tool.calls()[0]["env"]


def test_local_connection_and_interpreter_for_the_default_inventory(fake_tool, dirs):
    run(fake_tool, dirs)
    env = fake_tool.calls()[0]["env"]
    assert (env["ANSIBLE_TRANSPORT"], env["ANSIBLE_PYTHON_INTERPRETER"]) == ("local", sys.executable)


def test_operator_settings_are_kept(fake_tool, dirs):
    run(fake_tool, dirs, env={"ANSIBLE_TRANSPORT": "paramiko",
                              "ANSIBLE_PYTHON_INTERPRETER": "/opt/py/bin/python3"})
    env = fake_tool.calls()[0]["env"]
    assert (env["ANSIBLE_TRANSPORT"], env["ANSIBLE_PYTHON_INTERPRETER"]) == \
        ("paramiko", "/opt/py/bin/python3")


def test_inventory_option_is_relative_to_the_working_directory(fake_tool, dirs):
    run(fake_tool, dirs, {"inventory": "hosts.ini"})
    [argv] = fake_tool.argvs()
    inventory = f"{dirs['HEAT_ANSIBLE_WORKING']}/hosts.ini"
    assert argv == expected(fake_tool, dirs, inventory=inventory)


def test_failure_status_passed_on(fake_tool, dirs):
    reply = run(fake_tool, dirs, reply={"stdout": "ansible failed",
                                        "stderr": "bad thing happened", "returncode": 4})
    assert reply == {"deploy_stdout": "ansible failed", "deploy_stderr": "bad thing happened",
                     "deploy_status_code": 4}


def test_outputs_read_from_heat_outputs_path(fake_tool, dirs):
    outputs = dirs["HEAT_ANSIBLE_OUTPUTS"]
    deployment = {**DEPLOYMENT, "outputs": [{"name": "result"}, {"name": "absent"}]}
    reply = run_hook("ansible", deployment, {
        **dirs, "HEAT_ANSIBLE_CMD": fake_tool.path,
        **fake_tool.env({"files": {f"{outputs}/1234.result": "42"}})})
    assert reply == {"deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0,
                     "result": "42"}
