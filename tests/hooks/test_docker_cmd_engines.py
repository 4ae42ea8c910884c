"""docker-cmd through HEAT_DOCKER_CMD against real engines: Debian's podman and a private
Docker engine, each started by the command line heat-agents used (busybox imported locally,
no registry). The same scenario runs on both: labels, flags, exec by the real name,
exit_codes, a taken name getting a suffix, and cleanup removing and renaming."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from guestagent.hooks.docker_cmd import HOOK
from tests.hooks.conftest import make


@dataclass
class Engine:
    """What the hook is told (HEAT_DOCKER_CMD + environment) and how the test asks the engine."""

    heat_docker_cmd: str
    env: dict
    cli: Callable


@pytest.fixture(params=["podman", "docker"])
def engine(request) -> Engine:
    if request.param == "podman":
        pod = request.getfixturevalue("podman")
        return Engine(pod.command, pod.env(), pod.podman)
    dockerd = request.getfixturevalue("dockerd")
    return Engine("docker", dockerd.env(), dockerd.docker)


def inspect(engine: Engine, name: str) -> dict:
    return json.loads(engine.cli("inspect", name).stdout)[0]


def names(engine: Engine) -> set[str]:
    return set(engine.cli("ps", "-a", "--format", "{{.Names}}").stdout.split())


def config(greeting: str, env_file: str) -> dict:
    return {
        "server": {"image": "local/busybox", "command": "sleep 3600", "net": "none",
                   "environment": [f"GREETING={greeting}"], "env_file": env_file,
                   "user": "root", "privileged": False, "start_order": 0,
                   "name": "ignored"},
        "job": {"image": "local/busybox", "detach": False, "net": "none",
                "command": ["sh", "-c", "echo from-job; exit 3"], "exit_codes": [0, 3],
                "start_order": 1},
        "probe": {"action": "exec", "command": ["server", "sh", "-c", "echo $GREETING"],
                  "start_order": 2},
    }


def test_run_exec_update_and_cleanup(engine, ctx, tmp_path):
    ctx.env = {**engine.env, "HEAT_DOCKER_CMD": engine.heat_docker_cmd}
    env_file = tmp_path / "app.env"
    env_file.write_text("COLOUR=blue\n")
    first = make("docker-cmd", config("hello", str(env_file)), name="svc")
    result = HOOK.run(first, ctx)
    assert result.status_code == 0, result.stderr
    assert "from-job" in result.stdout and "hello" in result.stdout
    assert result.stderr.splitlines()[0] == \
        "guestagent: docker-cmd ignored unknown container keys: server.name"
    server = inspect(engine, "server")
    labels = server["Config"]["Labels"]
    assert {k: labels[k] for k in ("config_id", "container_name", "managed_by",
                                   "deploy_stack_id", "deploy_resource_name")} == {
        "config_id": first.id, "container_name": "server", "managed_by": "docker-cmd",
        "deploy_stack_id": "stack/1234", "deploy_resource_name": "svc"}
    env = dict(item.split("=", 1) for item in server["Config"]["Env"])
    assert env["GREETING"] == "hello" and env["COLOUR"] == "blue"
    assert server["State"]["Running"]

    # An UPDATE arrives as a new id while the old containers still hold the names.
    second = make("docker-cmd", config("changed", str(env_file)), name="svc", action="UPDATE")
    result = HOOK.run(second, ctx)
    assert result.status_code == 0, result.stderr
    assert "changed" in result.stdout  # exec reached the new server under its suffixed name
    suffixed = [n for n in names(engine) if re.fullmatch(r"server-[0-9a-z]{8}", n)]
    assert len(suffixed) == 1

    # The old id leaves the metadata: its containers go, the new ones take their own names.
    result = HOOK.cleanup(first, ctx)
    assert result.status_code == 0, result.stderr
    assert inspect(engine, "server")["Config"]["Labels"]["config_id"] == second.id
    assert {"server", "job"} <= names(engine) and suffixed[0] not in names(engine)
    assert HOOK.cleanup(second, ctx).status_code == 0
    assert not {"server", "job"} & names(engine)


def test_failing_container_status_reaches_heat(engine, ctx):
    ctx.env = {**engine.env, "HEAT_DOCKER_CMD": engine.heat_docker_cmd}
    dep = make("docker-cmd", {"bad": {"image": "local/busybox", "detach": False, "net": "none",
                                      "command": "sh -c 'echo broken >&2; exit 5'"}},
               name="failing")
    result = HOOK.run(dep, ctx)
    assert result.status_code == 5 and "broken" in result.stderr
    assert HOOK.cleanup(dep, ctx).status_code == 0
