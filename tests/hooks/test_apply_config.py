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
