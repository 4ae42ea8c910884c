"""The puppet hook's command line, environment, files and reply pinned to heat-agents' hook-puppet.

A recording fake stands in for puppet (tests/hooks/fake_tool.py), fed the same
deployment shape heat-agents' own tests use; then Debian's real puppet 7 shows
that `--color false` keeps ANSI codes out of what Heat shows users.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.hooks.conftest import run_hook

DEPLOYMENT = {
    "id": "1234",
    "creation_time": "2015-07-16T11:40:20",
    "name": "fake_resource_name",
    "group": "puppet",
    "options": {"enable_hiera": True, "enable_facter": True, "enable_debug": True,
                "enable_verbose": True},
    "inputs": [{"name": "foo", "value": "bar"}, {"name": "another", "value": "input"}],
    "outputs": [{"name": "first_output"}, {"name": "second_output"}],
    "config": "the puppet script",
}
DEBUG = ["--debug", "--logdest", "/var/log/puppet/heat-debug.log"]
VERBOSE = ["--verbose", "--logdest", "/var/log/puppet/heat-verbose.log"]


@pytest.fixture
def dirs(tmp_path):
    names = {"HEAT_PUPPET_WORKING": "work", "HEAT_PUPPET_OUTPUTS": "outputs",
             "HEAT_PUPPET_LOGDIR": "logs", "HEAT_PUPPET_HIERA_DATADIR": "hiera"}
    return {var: str(tmp_path / sub) for var, sub in names.items()}


def run(fake_tool, dirs, deployment, reply):
    env = {**dirs, **fake_tool.env(reply), "HEAT_PUPPET_CMD": fake_tool.path}
    return run_hook("puppet", deployment, env)


def head(fake_tool) -> list[str]:
    return [fake_tool.path, "apply", "--color", "false", "--detailed-exitcodes",
            "--logdest", "console"]


def test_full_options_argv_env_files_and_reply(fake_tool, dirs):
    outputs = dirs["HEAT_PUPPET_OUTPUTS"]
    reply = run(fake_tool, dirs, DEPLOYMENT, {
        "stdout": "puppet success", "stderr": "thing happened",
        "files": {f"{outputs}/1234.first_output": "output 1",
                  f"{outputs}/1234.second_output": "output 2"}})
    assert reply == {"deploy_stdout": "puppet success", "deploy_stderr": "thing happened",
                     "deploy_status_code": 0, "first_output": "output 1",
                     "second_output": "output 2"}
    [call] = fake_tool.calls()
    manifest = f"{dirs['HEAT_PUPPET_WORKING']}/1234.pp"
    assert call["argv"] == head(fake_tool) + DEBUG + VERBOSE + [manifest]
    env = call["env"]
    assert (env["FACTER_foo"], env["FACTER_another"]) == ("bar", "input")
    assert env["FACTER_heat_outputs_path"] == f"{outputs}/1234"
    assert env["FACTER_deploy_config_name"] == "fake_resource_name"  # set when hiera is on
    fqdn = subprocess.run(["hostname", "-f"], capture_output=True, text=True, check=True)
    assert env["FACTER_fqdn"] == fqdn.stdout.strip()
    assert Path(manifest).read_text() == "the puppet script"
    hiera = f"{dirs['HEAT_PUPPET_HIERA_DATADIR']}/heat_config_fake_resource_name.json"
    assert Path(hiera).read_text() == '{"foo": "bar", "another": "input"}'
    # Upstream keeps puppet's output under the log directory, named by creation time and id.
    logs = dirs["HEAT_PUPPET_LOGDIR"]
    assert Path(f"{logs}/2015-07-16-11-40-20-1234-stdout.log").read_text() == "puppet success"
    assert Path(f"{logs}/2015-07-16-11-40-20-1234-stderr.log").read_text() == "thing happened"


@pytest.mark.parametrize("off, expected", [("enable_debug", VERBOSE), ("enable_verbose", DEBUG)])
def test_debug_and_verbose_each_add_their_logdest(fake_tool, dirs, off, expected):
    deployment = {**DEPLOYMENT, "options": {**DEPLOYMENT["options"], off: False}}
    run(fake_tool, dirs, deployment, {"stdout": "success"})
    [argv] = fake_tool.argvs()
    assert argv == head(fake_tool) + expected + [f"{dirs['HEAT_PUPPET_WORKING']}/1234.pp"]


def test_modulepath_and_tags_come_before_debug(fake_tool, dirs):
    options = {**DEPLOYMENT["options"], "modulepath": "/opt/modules", "tags": "package,file"}
    run(fake_tool, dirs, {**DEPLOYMENT, "options": options}, {})
    [argv] = fake_tool.argvs()
    assert argv == head(fake_tool) + ["--modulepath", "/opt/modules", "--tags", "package,file"] \
        + DEBUG + VERBOSE + [f"{dirs['HEAT_PUPPET_WORKING']}/1234.pp"]


def test_facts_off_and_hiera_off(fake_tool, dirs):
    options = {"enable_facter": False}
    run(fake_tool, dirs, {**DEPLOYMENT, "options": options}, {})
    [call] = fake_tool.calls()
    assert "FACTER_foo" not in call["env"] and "FACTER_deploy_config_name" not in call["env"]
    assert call["env"]["FACTER_heat_outputs_path"].endswith("/1234")
    assert call["argv"] == head(fake_tool) + [f"{dirs['HEAT_PUPPET_WORKING']}/1234.pp"]


@pytest.mark.parametrize("code, status", [(2, 0), (4, 4), (6, 6), (1, 1)])
def test_detailed_exit_codes(fake_tool, dirs, code, status):
    reply = run(fake_tool, dirs, DEPLOYMENT, {"stdout": "out", "stderr": "err",
                                              "returncode": code})
    assert reply == {"deploy_stdout": "out", "deploy_stderr": "err", "deploy_status_code": status}


def test_deployment_without_id_is_named_by_name(fake_tool, dirs):
    deployment = {k: v for k, v in DEPLOYMENT.items() if k != "id"}
    reply = run(fake_tool, dirs, deployment, {})
    assert reply["deploy_status_code"] == 0, reply["deploy_stderr"]
    [argv] = fake_tool.argvs()
    assert argv[-1] == f"{dirs['HEAT_PUPPET_WORKING']}/fake_resource_name.pp"


@pytest.mark.skipif(shutil.which("puppet") is None,
                    reason="puppet not installed (scripts/setup-test-env.sh installs it)")
def test_real_puppet_output_has_no_colour_codes(dirs, tmp_path):
    # A notice on stdout and a failing resource on stderr: both are coloured without --color false.
    deployment = {**DEPLOYMENT, "options": {}, "outputs": [],
                  "config": "notice('hello')\nfile { '/nonexistent-dir/x': content => 'a' }\n"}
    reply = run_hook("puppet", deployment, dirs)
    assert reply["deploy_status_code"] == 4
    assert "hello" in reply["deploy_stdout"] and "nonexistent-dir" in reply["deploy_stderr"]
    assert "\x1b" not in reply["deploy_stdout"] + reply["deploy_stderr"]
    # heat-agents' reply carries nothing else.
    assert set(reply) == {"deploy_stdout", "deploy_stderr", "deploy_status_code"}
    json.dumps(reply)
