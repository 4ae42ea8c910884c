"""The real agent driving docker-cmd through HEAT_DOCKER_CMD=podman: an UPDATE (new id, same
name) starts the new containers under suffixed names, and when the old id leaves the metadata
the agent's cleanup removes the old ones and gives the new ones their own names."""

from __future__ import annotations

import json

from tests.support.agent import deployment, run_agent, signals_for


def labels_of(podman, name: str) -> dict:
    return json.loads(podman.podman("inspect", name).stdout)[0]["Config"]["Labels"]


def test_update_then_old_id_gone(fakecloud, podman, tmp_path):
    state = tmp_path / "state"
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    env = {**podman.env(), "HEAT_DOCKER_CMD": podman.command}
    config = {"agent-web": {"image": "local/busybox", "command": "sleep 3600", "net": "none"}}
    first = deployment(fakecloud, "agent-web-dep", config, group="docker-cmd")
    fakecloud.set_metadata({"deployments": [first]})
    assert run_agent(state, *args, env=env).returncode == 0
    assert signals_for(fakecloud, "agent-web-dep")[-1]["deploy_status_code"] == 0
    assert labels_of(podman, "agent-web")["config_id"] == first["id"]

    second = deployment(fakecloud, "agent-web-dep", config, group="docker-cmd")
    fakecloud.set_metadata({"deployments": [second]})
    proc = run_agent(state, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert signals_for(fakecloud, "agent-web-dep")[-1]["deploy_status_code"] == 0
    assert labels_of(podman, "agent-web")["config_id"] == second["id"]
    listed = podman.podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert [n for n in listed if n.startswith("agent-web")] == ["agent-web"]

    fakecloud.set_metadata({"deployments": []})
    assert run_agent(state, *args, env=env).returncode == 0
    listed = podman.podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert not [n for n in listed if n.startswith("agent-web")]
