"""The json-file hook: files written where the deployment says, confined, private by default."""

from __future__ import annotations

import json
import os

import pytest

from guestagent.errors import InvalidDeployment
from guestagent.hooks.json_file import HOOK
from tests.hooks.conftest import deployment_dict, make, mode_of, run_standalone


@pytest.fixture
def jctx(ctx, tmp_path):
    (tmp_path / "allowed").mkdir()
    ctx.env = {**os.environ, "HEAT_JSON_FILE_ALLOWED_DIRS": str(tmp_path / "allowed")}
    return ctx


def test_writes_each_file_private_by_default(jctx, tmp_path):
    root = tmp_path / "allowed"
    config = {f"{root}/app/config.json": {"debug": True, "none": None, "n": 3},
              f"{root}/other.json": ["a", "b"]}
    result = HOOK.run(make("json-file", config), jctx)
    assert result.status_code == 0
    assert json.loads((root / "app" / "config.json").read_text()) == \
        {"debug": True, "none": None, "n": 3}
    assert json.loads((root / "other.json").read_text()) == ["a", "b"]
    assert mode_of(root / "app" / "config.json") == 0o600
    assert mode_of(root / "app") == 0o700
    # Re-run with other data: rewritten, not appended to.
    HOOK.run(make("json-file", {f"{root}/other.json": {"x": 1}}), jctx)
    assert json.loads((root / "other.json").read_text()) == {"x": 1}


def test_mode_option_honoured_and_existing_dir_mode_kept(jctx, tmp_path):
    root = tmp_path / "allowed"
    os.chmod(root, 0o755)
    HOOK.run(make("json-file", {f"{root}/shared.json": {}}, options={"mode": "0644"}), jctx)
    assert mode_of(root / "shared.json") == 0o644
    assert mode_of(root) == 0o755
    with pytest.raises(InvalidDeployment, match="options.mode"):
        HOOK.run(make("json-file", {f"{root}/x.json": {}}, options={"mode": "rw"}), jctx)


@pytest.mark.parametrize("path", ["{root}/../escape.json", "relative.json", "{root}/a/../../b.json",
                                  "/proc/self/x.json", "{tmp}/outside.json"])
def test_paths_confined_with_clear_error(jctx, tmp_path, path):
    root = tmp_path / "allowed"
    bad = path.format(root=root, tmp=tmp_path)
    good = f"{root}/good.json"
    dep = make("json-file", {good: 1, bad: 2}, name="files")
    with pytest.raises(InvalidDeployment, match=r"deployment files .*field \"config\["):
        HOOK.run(dep, jctx)
    assert not (root / "good.json").exists()  # nothing is written when one path is refused
    assert not (tmp_path / "escape.json").exists() and not (tmp_path / "outside.json").exists()


def test_symlink_out_of_allowed_dir_refused(jctx, tmp_path):
    root = tmp_path / "allowed"
    (tmp_path / "secret").mkdir()
    (root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidDeployment, match="outside the allowed directories"):
        HOOK.run(make("json-file", {f"{root}/link/x.json": 1}), jctx)
    assert not (tmp_path / "secret" / "x.json").exists()


def test_standalone_speaks_heat_config_abi(tmp_path):
    target = tmp_path / "out" / "data.json"
    reply = run_standalone("json_file", deployment_dict("json-file", {str(target): {"k": "v"}}),
                           {"HEAT_JSON_FILE_ALLOWED_DIRS": str(tmp_path)}, tmp_path)
    assert reply["deploy_status_code"] == 0, reply["deploy_stderr"]
    assert json.loads(target.read_text()) == {"k": "v"}
    reply = run_standalone("json_file", deployment_dict("json-file", {"/etc/../x": 1}, name="n"),
                           {}, tmp_path)
    assert reply["deploy_status_code"] != 0 and "may not contain '..'" in reply["deploy_stderr"]
