"""The docker-compose hook against a private real Docker engine and Debian's docker-compose."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from guestagent.errors import HookFailed, InvalidDeployment
from guestagent.hooks.docker_compose import HOOK
from guestagent.state import safe_component
from tests.hooks.conftest import deployment_dict, env_of, make, mode_of, run_standalone

pytestmark = pytest.mark.skipif(
    not (shutil.which("docker-compose") or shutil.which("podman-compose")),
    reason="no compose tool (scripts/setup-test-env.sh installs docker-compose)")


def compose(greeting: str) -> str:
    # busybox sleep as PID 1 ignores SIGTERM: stop with SIGKILL so down does not wait 10 s.
    return (f"services:\n  web:\n    image: local/busybox\n    command: [sleep, '3600']\n"
            f"    stop_signal: SIGKILL\n"
            f"    environment:\n      GREETING: {greeting}\n    env_file: [app.env]\n")


def containers(dockerd, project: str) -> list[dict]:
    ids = dockerd.docker("ps", "-aq", "--filter",
                         f"label=com.docker.compose.project={project}").stdout.split()
    if not ids:
        return []
    return json.loads(dockerd.docker("inspect", *ids).stdout)


def project_of(name: str) -> str:
    """The project docker-compose 1.x names after the project directory (no -p is passed)."""
    return re.sub(r"[^-_a-z0-9]", "", safe_component(name).lower())


def test_up_update_delete(dctx, dockerd):
    env_files = [{"file_name": "app.env", "content": "COLOUR=blue\n"}]
    first = make("docker-compose", compose("hello"), name="web-app",
                 inputs={"env_files": env_files})
    result = HOOK.run(first, dctx)
    assert result.status_code == 0, result.stderr
    [running] = containers(dockerd, "web-app")
    assert running["State"]["Running"]
    assert env_of(running)["GREETING"] == "hello" and env_of(running)["COLOUR"] == "blue"
    project_dir = dctx.work_dir / "web-app"
    assert mode_of(project_dir) == 0o700
    assert mode_of(project_dir / "docker-compose.yml") == 0o600
    assert mode_of(project_dir / "app.env") == 0o600

    # UPDATE: a new id with the same name changes the running service.
    second = make("docker-compose", compose("changed"), name="web-app",
                  inputs={"env_files": [{"file_name": "app.env", "content": "COLOUR=red\n"}]},
                  action="UPDATE")
    result = HOOK.run(second, dctx)
    assert result.status_code == 0, result.stderr
    [updated] = containers(dockerd, "web-app")
    assert updated["State"]["Running"]
    assert env_of(updated)["GREETING"] == "changed" and env_of(updated)["COLOUR"] == "red"
    # The first id vanishing from metadata must not take down what the second brought up.
    assert HOOK.cleanup(first, dctx) is None
    assert containers(dockerd, "web-app")[0]["State"]["Running"]

    delete = make("docker-compose", compose("changed"), name="web-app", action="DELETE")
    result = HOOK.run(delete, dctx)
    assert result.status_code == 0, result.stderr
    assert containers(dockerd, "web-app") == []


def test_cleanup_of_gone_deployment_brings_project_down(dctx, dockerd):
    dep = make("docker-compose", compose("bye"), name="gone-app",
               inputs={"env_files": [{"file_name": "app.env", "content": ""}]})
    assert HOOK.run(dep, dctx).status_code == 0
    assert len(containers(dockerd, "gone-app")) == 1
    result = HOOK.cleanup(dep, dctx)
    assert result is not None and result.status_code == 0, result.stderr
    assert containers(dockerd, "gone-app") == []


def test_object_config_keeps_booleans_and_nulls(dctx, dockerd):
    config = {"services": {"tty-app": {"image": "local/busybox", "command": ["sleep", "3600"],
                                       "tty": True, "stdin_open": False, "stop_signal": "SIGKILL",
                                       "labels": {"empty": ""}, "working_dir": None}}}
    config["services"]["tty-app"].pop("working_dir")
    config["x-note"] = None
    dep = make("docker-compose", config, name="Obj App")
    result = HOOK.run(dep, dctx)
    assert result.status_code == 0, result.stderr
    written = dctx.work_dir / safe_component("Obj App") / "docker-compose.yml"
    assert yaml.safe_load(written.read_text()) == config
    [container] = containers(dockerd, project_of("Obj App"))
    assert container["Config"]["Tty"] is True and container["Config"]["OpenStdin"] is False
    HOOK.run(make("docker-compose", config, name="Obj App", action="DELETE"), dctx)


def test_compose_failure_reports_stderr(dctx):
    bad = "services:\n  web:\n    image: local/no-such-image-here\n"
    result = HOOK.run(make("docker-compose", bad, name="bad-app"), dctx)
    assert result.status_code != 0
    assert "no-such-image-here" in result.stderr


def test_env_file_name_confined(ctx):
    dep = make("docker-compose", compose("x"), name="evil",
               inputs={"env_files": [{"file_name": "../../etc/cron.d/x", "content": "boom"}]})
    with pytest.raises(InvalidDeployment, match=r"evil .*inputs.env_files\[0\].file_name"):
        HOOK.run(dep, ctx)
    assert not (ctx.work_dir.parent / "etc").exists()


def test_missing_tool_says_which_and_how(ctx, tmp_path):
    ctx.env = {"PATH": str(tmp_path)}
    with pytest.raises(HookFailed, match="no compose tool.*apt-get install docker-compose"):
        HOOK.run(make("docker-compose", compose("x"), name="none"), ctx)


def test_standalone_speaks_heat_config_abi(tmp_path, dockerd):
    dep = deployment_dict("docker-compose", compose("abi"), name="abi-app",
                          inputs={"env_files": [{"file_name": "app.env", "content": "A=1\n"}]})
    env = dockerd.env()
    reply = run_standalone("docker_compose", dep, env, tmp_path)
    assert reply["deploy_status_code"] == 0, reply["deploy_stderr"]
    assert (tmp_path / "w" / "abi-app" / "docker-compose.yml").exists()
    assert containers(dockerd, "abi-app")[0]["State"]["Running"]
    dep = deployment_dict("docker-compose", compose("abi"), name="abi-app", action="DELETE")
    assert run_standalone("docker_compose", dep, env, tmp_path)["deploy_status_code"] == 0
    assert containers(dockerd, "abi-app") == []
