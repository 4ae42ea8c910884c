"""docker-cmd with HEAT_DOCKER_CMD: the command lines and reply pinned to heat-agents'
hook-docker-cmd and its cleanup script, with a recording fake as the command
(tests/hooks/fake_tool.py), fed the deployment heat-agents' own tests use."""

from __future__ import annotations

import re

import pytest

from tests.hooks.conftest import run_hook

DEPLOYMENT = {
    "name": "abcdef001", "group": "docker-cmd", "id": "abc123",
    "inputs": [{"name": "deploy_stack_id", "value": "the_stack"},
               {"name": "deploy_resource_name", "value": "the_deployment"}],
    "config": {
        "db": {"name": "x", "image": "xxx", "privileged": False, "environment": ["foo=bar"],
               "env_file": "env.file", "start_order": 0},
        "web-ls": {"action": "exec", "start_order": 2, "command": ["web", "/bin/ls", "-l"]},
        "web": {"name": "y", "start_order": 1, "image": "yyy", "net": "host",
                "restart": "always", "privileged": True, "user": "root",
                "command": "/bin/webserver start", "volumes": ["/run:/run", "db:/var/lib/db"],
                "environment": ["KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "FOO=BAR"],
                "env_file": ["foo.env", "bar.conf"]},
    },
}
# heat-agents ignores the `name` keys above; we do too, and say so in one line.
WARNING = "guestagent: docker-cmd ignored unknown container keys: db.name, web.name"
ABSENT = {"stderr": "Error: No such object", "returncode": 1}


def labels(container: str) -> list[str]:
    return ["--label", "deploy_stack_id=the_stack", "--label", "deploy_resource_name=the_deployment",
            "--label", "config_id=abc123", "--label", f"container_name={container}",
            "--label", "managed_by=docker-cmd"]


DB_FLAGS = ["--detach=true", "--env-file=env.file", "--env=foo=bar", "--privileged=false", "xxx"]
WEB_FLAGS = ["--detach=true", "--env-file=foo.env", "--env-file=bar.conf",
             "--env=KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "--env=FOO=BAR", "--net=host",
             "--privileged=true", "--restart=always", "--user=root", "--volume=/run:/run",
             "--volume=db:/var/lib/db", "yyy", "/bin/webserver", "start"]
PS_WEB = ["ps", "-a", "--filter", "label=container_name=web", "--filter",
          "label=config_id=abc123", "--format", "{{.Names}}"]


def run(fake_tool, deployment, reply):
    return run_hook("docker_cmd", deployment, {"HEAT_DOCKER_CMD": fake_tool.path,
                                               **fake_tool.env(reply)})


def args(fake_tool) -> list[list[str]]:
    return [argv[1:] for argv in fake_tool.argvs()]


def test_run_and_exec_command_lines(fake_tool):
    reply = run(fake_tool, DEPLOYMENT, [
        ABSENT, {"stderr": "Creating db..."}, ABSENT, {"stderr": "Creating web..."},
        {"stdout": "web"}, {"stderr": "one.txt\ntwo.txt\nthree.txt"}])
    assert reply == {"deploy_stdout": "",
                     "deploy_stderr": f"{WARNING}\nCreating db...\nCreating web...\n"
                                      "one.txt\ntwo.txt\nthree.txt",
                     "deploy_status_code": 0}
    assert args(fake_tool) == [
        ["inspect", "--format", "exists", "db"],
        ["run", "--name", "db"] + labels("db") + DB_FLAGS,
        ["inspect", "--format", "exists", "web"],
        ["run", "--name", "web"] + labels("web") + WEB_FLAGS,
        PS_WEB,
        ["exec", "web", "/bin/ls", "-l"],
    ]


def test_a_failing_container_sets_the_status_and_the_rest_still_run(fake_tool):
    reply = run(fake_tool, DEPLOYMENT, [
        ABSENT, {"stderr": "Creating db...", "returncode": 125}, ABSENT,
        {"stderr": "Creating web..."}, {"stdout": "web"},
        {"stderr": "No such file or directory", "returncode": 2}])
    assert reply["deploy_status_code"] == 2
    assert reply["deploy_stderr"].endswith("Creating web...\nNo such file or directory")
    assert len(fake_tool.argvs()) == 6


def test_exit_codes_accept_a_status(fake_tool):
    deployment = {**DEPLOYMENT, "inputs": [], "config": {"web-ls": {
        "action": "exec", "command": ["web", "/bin/ls", "-l"], "exit_codes": [0, 1]}}}
    reply = run(fake_tool, deployment, [{"stdout": "web"},
                                        {"stderr": "Warning: custom exit code", "returncode": 1}])
    assert reply == {"deploy_stdout": "", "deploy_stderr": "Warning: custom exit code",
                     "deploy_status_code": 0}
    assert args(fake_tool) == [PS_WEB, ["exec", "web", "/bin/ls", "-l"]]


def test_taken_names_get_a_random_suffix_and_exec_finds_it(fake_tool):
    reply = run(fake_tool, DEPLOYMENT, [
        {"stdout": "exists\n"}, ABSENT, {"stderr": "Creating db..."},
        {"stdout": "exists\n"}, ABSENT, {"stderr": "Creating web..."},
        {"stdout": "web-asdf1234\n"}, {"stdout": "one.txt\n"}])
    assert reply["deploy_status_code"] == 0
    calls = args(fake_tool)
    db_name, web_name = calls[1][3], calls[4][3]
    assert re.fullmatch("db-[0-9a-z]{8}", db_name) and re.fullmatch("web-[0-9a-z]{8}", web_name)
    assert calls[2] == ["run", "--name", db_name] + labels("db") + DB_FLAGS
    assert calls[5] == ["run", "--name", web_name] + labels("web") + WEB_FLAGS
    assert calls[6:] == [PS_WEB, ["exec", "web-asdf1234", "/bin/ls", "-l"]]
    assert reply["deploy_stdout"] == "one.txt\n"


def test_delete_and_empty_config_run_nothing(fake_tool):
    delete = {**DEPLOYMENT, "inputs": [{"name": "deploy_action", "value": "DELETE"}]}
    assert run(fake_tool, delete, {})["deploy_status_code"] == 0
    assert run(fake_tool, {**DEPLOYMENT, "config": ""}, {}) == {
        "deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0}
    assert fake_tool.calls() == []


@pytest.mark.parametrize("config, field", [
    ({"x": {"action": "exec"}}, "config.x.command"),
    ({"x": {"image": "i", "exit_codes": "0"}}, "config.x.exit_codes"),
    ({"x": {"action": "kill"}}, "config.x.action"),
])
def test_what_upstream_crashed_on_is_refused_before_anything_runs(fake_tool, config, field):
    reply = run(fake_tool, {**DEPLOYMENT, "config": config}, {})
    assert reply["deploy_status_code"] != 0 and field in reply["deploy_stderr"]
    assert fake_tool.calls() == []


def test_cleanup_removes_a_gone_deployment_and_renames_the_rest(fake_tool, ctx):
    from guestagent.hooks.docker_cmd import HOOK
    from tests.hooks.conftest import make

    dep = make("docker-cmd", DEPLOYMENT["config"], dep_id="abc123")
    ctx.env = {**__import__("os").environ, "HEAT_DOCKER_CMD": fake_tool.path,
               **fake_tool.env([{"stdout": "111\n222\n"}, {"stdout": "111 deleted"},
                                {"stdout": "222 deleted"},
                                {"stdout": "333 333-s84nf83h\nweb-x1 web\nweb web2\nplain\n"},
                                {}])}
    result = HOOK.cleanup(dep, ctx)
    assert result.status_code == 0, result.stderr
    assert args(fake_tool) == [
        ["ps", "-q", "-a", "--filter", "label=managed_by=docker-cmd",
         "--filter", "label=config_id=abc123"],
        ["rm", "-f", "111"], ["rm", "-f", "222"],
        ["ps", "-a", "--format", '{{.Names}} {{.Label "container_name"}}'],
        # web-x1 wants "web", which still exists; "web" wants web2, which is free.
        ["rename", "333", "333-s84nf83h"], ["rename", "web", "web2"]]
