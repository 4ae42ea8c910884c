"""The apply-config hook: the template tree rendered against all the metadata, by a child."""

from __future__ import annotations

import json
import os

import pytest

from guestagent.errors import HookFailed
from guestagent.hooks.apply_config import HOOK
from tests.hooks.conftest import deployment_dict, make, run_standalone


def tree(tmp_path):
    """A template tree writing <tmp_path>/out/app.conf from metadata key `greeting`."""
    templates = tmp_path / "templates"
    target_dir = templates / str(tmp_path / "out").lstrip("/")
    target_dir.mkdir(parents=True)
    (target_dir / "app.conf").write_text("greeting={{greeting}}\n")
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"greeting": "from-metadata"}))
    return {"OS_CONFIG_APPLIER_TEMPLATES": str(templates), "OS_CONFIG_FILES": str(metadata)}


def test_renders_tree_against_metadata(ctx, tmp_path):
    ctx.env = {**os.environ, **tree(tmp_path)}
    result = HOOK.run(make("apply-config", {}), ctx)
    assert result.status_code == 0, result.stderr
    assert (tmp_path / "out" / "app.conf").read_text() == "greeting=from-metadata\n"


def test_renderer_failure_is_reported(ctx, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    ctx.env = {**os.environ, **tree(tmp_path), "OS_CONFIG_FILES": str(bad)}
    result = HOOK.run(make("apply-config", {}), ctx)
    assert result.status_code != 0 and "must hold a JSON object" in result.stderr


def test_cmd_override_and_missing_tool(ctx, tmp_path):
    ctx.env = {**os.environ, "HEAT_APPLY_CONFIG_CMD": "sh -c 'echo custom; exit 4'"}
    result = HOOK.run(make("apply-config", {}), ctx)
    assert result.status_code == 4 and result.stdout == "custom\n"
    ctx.env = {"PATH": str(tmp_path), "HEAT_APPLY_CONFIG_CMD": "os-apply-config"}
    with pytest.raises(HookFailed, match="os-apply-config is not installed"):
        HOOK.run(make("apply-config", {}), ctx)


def test_standalone_speaks_heat_config_abi(tmp_path):
    reply = run_standalone("apply_config", deployment_dict("apply-config", {}),
                           tree(tmp_path), tmp_path)
    assert reply["deploy_status_code"] == 0, reply["deploy_stderr"]
    assert (tmp_path / "out" / "app.conf").read_text() == "greeting=from-metadata\n"


def test_no_agent_metadata_is_a_failure_not_an_empty_render(ctx, tmp_path):
    ctx.os_config_dir = tmp_path / "never-written"
    ctx.env = {**os.environ, **tree(tmp_path)}  # an OS_CONFIG_FILES that must not be used
    result = HOOK.run(make("apply-config", {}), ctx)
    assert result.status_code == 1
    assert "no metadata to render the templates against" in result.stderr
    assert str(tmp_path / "never-written" / "os_config_files.json") in result.stderr
    assert not (tmp_path / "out" / "app.conf").exists()


def _structured(name: str, group: str, config, transport: str = "NO_SIGNAL") -> dict:
    """A deployment shaped as Heat's OS::Heat::StructuredDeployment puts it in the metadata."""
    return {"id": f"{name}-0000-1111", "name": name, "group": group, "config": config,
            "creation_time": "2026-11-21T12:00:00Z", "options": {},
            "inputs": [{"name": "deploy_server_id", "value": "server-1", "type": "String",
                        "description": "ID of the server being deployed to"},
                       {"name": "deploy_action", "value": "CREATE", "type": "String"},
                       {"name": "deploy_stack_id", "value": "stack/1", "type": "String"},
                       {"name": "deploy_resource_name", "value": name, "type": "String"},
                       {"name": "deploy_signal_transport", "value": transport,
                        "type": "String"}],
            "outputs": []}


def test_agent_with_its_own_state_dir_renders_its_own_metadata(tmp_path):
    """Through the agent, state directory not the default: the hook renders that agent's
    metadata, never the OS_CONFIG_FILES the agent itself was started with."""
    from tests.support.agent import run_agent

    templates = tmp_path / "templates"
    target = templates / str(tmp_path / "out").lstrip("/")
    target.mkdir(parents=True)
    (target / "app.conf").write_text("greeting={{greeting}} port={{app.port}}\n")
    decoy = tmp_path / "decoy.json"
    decoy.write_text(json.dumps({"greeting": "another agent's", "app": {"port": 1}}))
    local = tmp_path / "local"
    local.mkdir(mode=0o700)
    data = _structured("app-data", "os-apply-config", {"app": {"port": 8080}})
    render = _structured("render", "apply-config", {"ignored": True})
    (local / "meta.json").write_text(json.dumps({"greeting": "mine",
                                                 "deployments": [data, render]}))
    (local / "meta.json").chmod(0o600)
    refresh_base = tmp_path / "no-phases"
    refresh_base.mkdir()
    state = tmp_path / "elsewhere" / "state"
    proc = run_agent(state, "--collectors", "local", "--local-path", str(local),
                     env={"OS_CONFIG_APPLIER_TEMPLATES": str(templates),
                          "OS_CONFIG_FILES": str(decoy),
                          "OS_REFRESH_CONFIG_BASE_DIR": str(refresh_base)})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "app.conf").read_text() == "greeting=mine port=8080\n"
    response = json.loads((state / "deployments" / render["id"] / "response.json").read_text())
    assert response["deploy_status_code"] == 0
