"""The docker-cmd hook against a private real Docker engine, through the Docker SDK."""

from __future__ import annotations

import json

import pytest

from guestagent.errors import HookFailed, InvalidDeployment
from guestagent.hooks.docker_cmd import HOOK
from tests.hooks.conftest import deployment_dict, env_of, make, run_standalone

pytest.importorskip("docker", reason="Docker SDK not installed (scripts/setup-test-env.sh)")


def ours(dockerd, **labels) -> list[dict]:
    """Inspect data of the docker-cmd containers carrying `labels`."""
    args = ["ps", "-aq", "--filter", "label=managed_by=docker-cmd"]
    for key, value in labels.items():
        args += ["--filter", f"label={key}={value}"]
    ids = dockerd.docker(*args).stdout.split()
    return json.loads(dockerd.docker("inspect", *ids).stdout) if ids else []


def web(greeting: str, data_dir) -> dict:
    return {"web": {"image": "local/busybox", "command": "sleep 3600",
                    "environment": [f"GREETING={greeting}"], "labels": {"tier": "front"},
                    "restart": "unless-stopped", "volumes": [f"{data_dir}:/data:ro"],
                    "ports": ["18080:80"]}}


def test_run_update_delete(dctx, dockerd, tmp_path):
    first = make("docker-cmd", web("hello", tmp_path), name="svc")
    result = HOOK.run(first, dctx)
    assert result.status_code == 0, result.stderr
    [container] = ours(dockerd, deploy_name="svc")
    assert container["State"]["Running"] and container["Name"] == "/web"
    assert env_of(container)["GREETING"] == "hello"
    labels = container["Config"]["Labels"]
    assert labels["tier"] == "front" and labels["config_id"] == first.id
    assert labels["deploy_stack_id"] == "stack/1234"
    host = container["HostConfig"]
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["Binds"] == [f"{tmp_path}:/data:ro"]
    assert host["PortBindings"]["80/tcp"][0]["HostPort"] == "18080"

    # UPDATE: a new id with the same name replaces the container.
    second = make("docker-cmd", web("changed", tmp_path), name="svc", action="UPDATE")
    result = HOOK.run(second, dctx)
    assert result.status_code == 0, result.stderr
    [container] = ours(dockerd, deploy_name="svc")
    assert container["State"]["Running"] and env_of(container)["GREETING"] == "changed"
    assert container["Config"]["Labels"]["config_id"] == second.id
    # The first id vanishing afterwards leaves the second's container alone.
    HOOK.cleanup(first, dctx)
    assert len(ours(dockerd, deploy_name="svc")) == 1

    result = HOOK.run(make("docker-cmd", web("changed", tmp_path), name="svc", action="DELETE"),
                      dctx)
    assert result.status_code == 0, result.stderr
    assert ours(dockerd, deploy_name="svc") == []


def test_cleanup_removes_containers_of_gone_deployment(dctx, dockerd):
    dep = make("docker-cmd", {"alpha": {"image": "local/busybox", "command": ["sleep", "3600"]},
                              "beta": {"image": "local/busybox", "command": ["sleep", "3600"]}},
               name="gone")
    assert HOOK.run(dep, dctx).status_code == 0
    assert len(ours(dockerd, config_id=dep.id)) == 2
    result = HOOK.cleanup(dep, dctx)
    assert result.status_code == 0 and result.stdout.count("removed container") == 2
    assert ours(dockerd, config_id=dep.id) == []


def test_foreground_exit_codes_and_exec(dctx, dockerd):
    config = """
    job:
      image: local/busybox
      command: sh -c 'echo from-job; exit 3'
      detach: false
      exit_codes: [3]
      start_order: 1
    server:
      image: local/busybox
      command: [sleep, "3600"]
      start_order: 0
    probe:
      action: exec
      command: [server, sh, -c, 'echo from-exec']
      start_order: 2
    """
    dep = make("docker-cmd", config, name="ordered")
    result = HOOK.run(dep, dctx)
    assert result.status_code == 0, result.stderr
    assert "from-job" in result.stdout and "from-exec" in result.stdout
    assert result.stdout.index("server") < result.stdout.index("from-job")
    failing = make("docker-cmd", {"job": {"image": "local/busybox", "detach": False,
                                          "command": "sh -c 'echo broken >&2; exit 5'"}},
                   name="ordered")
    result = HOOK.run(failing, dctx)
    assert result.status_code == 5 and "exit status 5" in result.stderr
    HOOK.run(make("docker-cmd", {}, name="ordered", action="DELETE"), dctx)


def test_engine_error_is_a_failure(dctx):
    result = HOOK.run(make("docker-cmd", {"xx": {"image": "local/absent-image"}}, name="absent"),
                      dctx)
    assert result.status_code != 0 and "absent-image" in result.stderr


def test_unknown_keys_ignored_with_one_warning_line(dctx, dockerd):
    config = {"web": {"image": "local/busybox", "command": "sleep 3600", "restrat": "always",
                      "name": "x"}}
    result = HOOK.run(make("docker-cmd", config, name="typo"), dctx)
    assert result.status_code == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "unknown" in line] == [
        "guestagent: docker-cmd ignored unknown container keys: web.restrat, web.name"]
    assert ours(dockerd, deploy_name="typo")[0]["State"]["Running"]
    HOOK.run(make("docker-cmd", {}, name="typo", action="DELETE"), dctx)


def test_bad_container_name_names_deployment_and_field(ctx):
    with pytest.raises(InvalidDeployment, match=r"typo .*config.x': a container name"):
        HOOK.run(make("docker-cmd", {"x": {"image": "local/busybox"}}, name="typo"), ctx)


def test_unreachable_engine_says_where(ctx, tmp_path):
    ctx.env = {"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    with pytest.raises(HookFailed, match="cannot reach the Docker engine at unix://"):
        HOOK.run(make("docker-cmd", {"xx": {"image": "local/busybox"}}), ctx)


def test_standalone_speaks_heat_config_abi(tmp_path, dockerd):
    config = {"solo": {"image": "local/busybox", "command": "sleep 3600"}}
    dep = deployment_dict("docker-cmd", config, name="solo-dep")
    env = dockerd.env()
    reply = run_standalone("docker_cmd", dep, env, tmp_path)
    assert reply["deploy_status_code"] == 0, reply["deploy_stderr"]
    assert ours(dockerd, deploy_name="solo-dep")[0]["State"]["Running"]
    dep = deployment_dict("docker-cmd", config, name="solo-dep", action="DELETE")
    assert run_standalone("docker_cmd", dep, env, tmp_path)["deploy_status_code"] == 0
    assert ours(dockerd, deploy_name="solo-dep") == []
