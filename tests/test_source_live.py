"""Sources chosen at run time: Heat's `os-collect-config` key adds the heat source, and the
agent releases a zaqar snapshot once its deployments have run."""

import json

from guestagent import config
from guestagent.collectors import build
from tests.support.agent import deployment, run_agent, signals_for


def heat_options(cloud):
    cloud.add_user("server-user", "server-pw")
    return {"auth_url": cloud.auth_url, "user_id": "server-user", "password": "server-pw",
            "project_id": cloud.project_id, "stack_id": "st/uuid-1", "resource_name": "server"}


def test_metadata_key_makes_next_settings_build_heat(fakecloud, tmp_path):
    loaded = config.Loaded(base={}, cli={})
    assert "heat" not in loaded.settings().collectors
    doc = {"os-collect-config": {"collectors": ["heat"], "heat": heat_options(fakecloud)}}
    settings = loaded.settings(doc)
    assert "heat" in settings.collectors
    fakecloud.set_server_metadata("st", "uuid-1", "server", {"deployments": []})
    heat = build("heat", settings.source_options("heat"))
    assert heat.collect(None).document == {"deployments": []}


def test_agent_follows_credentials_from_boot_metadata(fakecloud, tmp_path):
    # Boot metadata (heat_local) names the heat source; the deployment only exists in Heat.
    dep = deployment(fakecloud, "from-heat", "#!/bin/sh\necho ran\n")
    fakecloud.set_server_metadata("st", "uuid-1", "server", {"deployments": [dep]})
    boot = tmp_path / "cfn-init-data"
    boot.write_text(json.dumps({"os-collect-config": {"collectors": ["heat"],
                                                      "heat": heat_options(fakecloud)}}))
    proc = run_agent(tmp_path / "state", "--collectors", "heat_local",
                     "--heat-local-path", str(boot))
    assert proc.returncode == 0, proc.stderr
    [body] = signals_for(fakecloud, "from-heat")
    assert body["deploy_status_code"] == 0 and body["deploy_stdout"] == "ran\n"
    assert fakecloud.logins == 1
    assert "server-pw" not in proc.stderr + proc.stdout


def test_agent_releases_zaqar_snapshot_after_its_deployments(fakecloud, tmp_path):
    fakecloud.add_user("server-user", "server-pw")
    dep = deployment(fakecloud, "from-zaqar", "#!/bin/sh\necho queued\n")
    fakecloud.post_message("server-q", {"deployments": [dep]})
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(json.dumps({"collectors": ["zaqar"], "zaqar": {
        "auth_url": fakecloud.auth_url, "user_id": "server-user", "password": "server-pw",
        "project_id": fakecloud.project_id, "queue_id": "server-q"}}))
    proc = run_agent(tmp_path / "state", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    [body] = signals_for(fakecloud, "from-zaqar")
    assert body["deploy_stdout"] == "queued\n"
    assert fakecloud.queue("server-q") == []  # released only after the deployment ran
