"""The docker-compose hook's command line, working directory, files and reply pinned to
heat-agents' hook-docker-compose (and its os-refresh-config script, which wrote the compose
file), with a recording fake as HEAT_DOCKER_COMPOSE_CMD (tests/hooks/fake_tool.py)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.hooks.conftest import run_hook

CONFIG = {"web": {"name": "x", "env_file": ["./common.env", "./test.env"]},
          "db": {"name": "y", "env_file": "./test1.env"}}
ENV_FILES = [{"file_name": "./common.env", "content": "xxxxx"},
             {"file_name": "./test.env", "content": "yyyy"},
             {"file_name": "./test1.env", "content": "zzz"}]
# heat-agents' tests: no id, the env_files input as a string.
DEPLOYMENT = {"name": "abcdef001", "group": "docker-compose",
              "inputs": [{"name": "env_files", "value": json.dumps(ENV_FILES)}],
              "config": CONFIG}


@pytest.fixture
def work(tmp_path):
    return tmp_path / "work"


def run(fake_tool, work, deployment, reply=None):
    return run_hook("docker_compose", deployment, {
        "HEAT_DOCKER_COMPOSE_WORKING": str(work), "HEAT_DOCKER_COMPOSE_CMD": fake_tool.path,
        **fake_tool.env(reply)})


def test_up_in_the_project_directory_with_env_files(fake_tool, work):
    reply = run(fake_tool, work, DEPLOYMENT, {"stderr": "Creating abcdef001_db_1..."})
    assert reply == {"deploy_stdout": "", "deploy_stderr": "Creating abcdef001_db_1...",
                     "deploy_status_code": 0}
    [call] = fake_tool.calls()
    assert call["argv"] == [fake_tool.path, "up", "-d", "--no-build"]
    project = work / "abcdef001"
    assert call["cwd"] == str(project)
    assert yaml.safe_load((project / "docker-compose.yml").read_text()) == CONFIG
    assert {p.name: p.read_text() for p in project.glob("*.env")} == {
        "common.env": "xxxxx", "test.env": "yyyy", "test1.env": "zzz"}


def test_without_inputs_failure_passed_on(fake_tool, work):
    deployment = {**DEPLOYMENT, "inputs": []}
    reply = run(fake_tool, work, deployment, {"stderr": "env_file_not found...", "returncode": 1})
    assert reply == {"deploy_stdout": "", "deploy_stderr": "env_file_not found...",
                     "deploy_status_code": 1}
    assert fake_tool.argvs() == [[fake_tool.path, "up", "-d", "--no-build"]]
    assert not list((work / "abcdef001").glob("*.env"))


def test_env_files_in_subdirectories_and_only_those_a_service_names(fake_tool, work):
    config = {"services": {"web": {"image": "x", "env_file": ["apps/web.env", "./common.env"]}}}
    files = [{"file_name": "apps/web.env", "content": "A=1"},
             {"file_name": "./common.env", "content": "B=2"},
             {"file_name": "unused.env", "content": "C=3"}]
    deployment = {**DEPLOYMENT, "config": config,
                  "inputs": [{"name": "env_files", "value": files}]}
    assert run(fake_tool, work, deployment)["deploy_status_code"] == 0
    project = work / "abcdef001"
    assert (project / "apps" / "web.env").read_text() == "A=1"
    assert (project / "common.env").read_text() == "B=2"
    assert not (project / "unused.env").exists()


@pytest.mark.parametrize("name, why", [
    ("../escape.env", "may not contain '..'"),
    ("apps/../../escape.env", "may not contain '..'"),
    ("/etc/escape.env", "must be relative"),
    ("./docker-compose.yml", "other than the compose file"),
])
def test_env_file_names_confined(fake_tool, work, name, why):
    deployment = {**DEPLOYMENT, "config": {"web": {"env_file": name}},
                  "inputs": [{"name": "env_files", "value": [{"file_name": name,
                                                              "content": "x"}]}]}
    reply = run(fake_tool, work, deployment)
    assert reply["deploy_status_code"] != 0
    assert "inputs.env_files[0].file_name" in reply["deploy_stderr"]
    assert why in reply["deploy_stderr"]
    assert fake_tool.calls() == []
    assert not (work / "escape.env").exists()


def test_env_file_through_a_symlink_out_refused(fake_tool, work, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "abcdef001").mkdir(parents=True)
    os.symlink(outside, work / "abcdef001" / "apps")
    deployment = {**DEPLOYMENT, "config": {"web": {"env_file": "apps/web.env"}},
                  "inputs": [{"name": "env_files",
                              "value": [{"file_name": "apps/web.env", "content": "x"}]}]}
    reply = run(fake_tool, work, deployment)
    assert "outside the project directory" in reply["deploy_stderr"]
    assert list(outside.iterdir()) == []


def test_remove_orphans_only_when_asked(fake_tool, work):
    run(fake_tool, work, {**DEPLOYMENT, "options": {"remove_orphans": True}})
    assert fake_tool.argvs() == [[fake_tool.path, "up", "-d", "--no-build", "--remove-orphans"]]


def test_delete_brings_the_project_down_in_its_directory(fake_tool, work):
    run(fake_tool, work, DEPLOYMENT)
    delete = {**DEPLOYMENT, "inputs": [{"name": "deploy_action", "value": "DELETE"}]}
    assert run(fake_tool, work, delete)["deploy_status_code"] == 0
    calls = fake_tool.calls()
    assert [c["argv"][1:] for c in calls] == [["up", "-d", "--no-build"], ["down"]]
    assert calls[1]["cwd"] == str(work / "abcdef001")


def test_no_config_is_nothing_to_do(fake_tool, work):
    reply = run(fake_tool, work, {**DEPLOYMENT, "config": ""})
    assert reply == {"deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0}
    assert fake_tool.calls() == []
