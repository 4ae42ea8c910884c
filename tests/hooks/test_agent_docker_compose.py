"""The real agent driving the docker-compose hook: update in place, bring down when gone."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.hooks.test_docker_compose import compose, containers
from tests.support.agent import deployment, run_agent, signals_for

pytestmark = pytest.mark.skipif(not shutil.which("docker-compose"),
                                reason="docker-compose not installed (scripts/setup-test-env.sh)")


def test_update_keeps_service_up_and_gone_brings_it_down(fakecloud, dockerd, tmp_path):
    state = tmp_path / "state"
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    env_files = [{"name": "env_files",
                  "value": [{"file_name": "app.env", "content": "A=1\n"}]}]
    first = deployment(fakecloud, "agent-app", compose("one"), group="docker-compose",
                       inputs=env_files)
    fakecloud.set_metadata({"deployments": [first]})
    assert run_agent(state, *args, env=dockerd.env()).returncode == 0
    [before] = containers(dockerd, "agent-app")
    assert before["State"]["Running"]
    assert signals_for(fakecloud, "agent-app")[-1]["deploy_status_code"] == 0
    # Kept for the cleanup to come, without the signal URL (a credential).
    kept = json.loads((state / "deployments" / first["id"] / "deployment.json").read_text())
    assert kept["name"] == "agent-app"
    assert "deploy_signal_id" not in {i["name"] for i in kept["inputs"]}

    # Heat's UPDATE: a new id with the same name replaces the old one in the metadata. The
    # unchanged service must not be taken down on the way (cleanup of the old id after the run).
    second = deployment(fakecloud, "agent-app", compose("one"), group="docker-compose",
                        inputs=env_files)
    fakecloud.set_metadata({"deployments": [second]})
    assert run_agent(state, *args, env=dockerd.env()).returncode == 0
    [after] = containers(dockerd, "agent-app")
    assert after["Id"] == before["Id"] and after["State"]["Running"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]

    # The deployment disappears from the metadata: its project is brought down.
    fakecloud.set_metadata({"deployments": []})
    assert run_agent(state, *args, env=dockerd.env()).returncode == 0
    assert containers(dockerd, "agent-app") == []
