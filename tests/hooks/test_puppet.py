"""The puppet hook against Debian's real `puppet apply`."""

from __future__ import annotations

import os
import shutil

import pytest

from guestagent.errors import HookFailed, InvalidDeployment
from guestagent.hooks.puppet import HOOK
from tests.hooks.conftest import deployment_dict, make, mode_of, run_standalone

pytestmark = pytest.mark.skipif(shutil.which("puppet") is None,
                                reason="puppet not installed (scripts/setup-test-env.sh installs it)")

WRITE_MANIFEST = """
file { '%(target)s':
  ensure  => file,
  content => "hello ${facts['greeting']}\\n",
}
file { "${facts['heat_outputs_path']}.result":
  ensure  => file,
  content => "done-${facts['greeting']}",
}
"""


def test_manifest_writes_file_from_input_and_reports_output(ctx, tmp_path):
    target = tmp_path / "hello.txt"
    dep = make("puppet", WRITE_MANIFEST % {"target": target}, inputs={"greeting": "world"},
               outputs=("result",))
    result = HOOK.run(dep, ctx)
    assert result.status_code == 0, result.stderr
    assert target.read_text() == "hello world\n"
    assert result.outputs == {"result": "done-world"}
    manifest = ctx.work_dir / f"{dep.id}.pp"
    assert mode_of(manifest) == 0o600 and mode_of(ctx.work_dir) == 0o700
    # A second run changes nothing: exit code 0, still a success.
    assert HOOK.run(dep, ctx).status_code == 0


def test_failing_resource_is_a_failure_with_stderr(ctx):
    dep = make("puppet", "exec { 'broken': command => '/bin/false' }")
    result = HOOK.run(dep, ctx)
    assert result.status_code in (4, 6)
    assert "broken" in result.stderr


def test_compile_error_is_a_failure(ctx):
    result = HOOK.run(make("puppet", "fail('manifest says no')"), ctx)
    assert result.status_code != 0
    assert "manifest says no" in result.stderr


def test_tags_option_limits_resources(ctx, tmp_path):
    manifest = (f"file {{ '{tmp_path}/a': content => 'a', tag => ['wanted'] }}\n"
                f"file {{ '{tmp_path}/b': content => 'b' }}\n")
    result = HOOK.run(make("puppet", manifest, options={"tags": ["wanted"]}), ctx)
    assert result.status_code == 0, result.stderr
    assert (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_hiera_data_written_private(ctx, tmp_path):
    datadir = tmp_path / "hieradata"
    ctx.env = {**os.environ, "HEAT_PUPPET_HIERA_DATADIR": str(datadir)}
    dep = make("puppet", "notice('hi')", name="web", inputs={"db_password": "s3cret"},
               options={"enable_hiera": True, "enable_facter": False})
    assert HOOK.run(dep, ctx).status_code == 0
    data = datadir / "heat_config_web.json"
    assert mode_of(data) == 0o600
    assert '"db_password": "s3cret"' in data.read_text()


def test_bad_option_names_deployment_and_field(ctx):
    dep = make("puppet", "notice('x')", name="web", options={"enable_debug": {"no": 1}})
    with pytest.raises(InvalidDeployment, match=r"web .*options.enable_debug"):
        HOOK.run(dep, ctx)


def test_missing_tool_says_which_and_how(ctx, tmp_path):
    ctx.env = {"PATH": str(tmp_path)}
    with pytest.raises(HookFailed, match="puppet is not installed.*apt-get install puppet"):
        HOOK.run(make("puppet", "notice('x')"), ctx)


def test_cmd_override_names_the_variable(ctx, tmp_path):
    ctx.env = {"PATH": str(tmp_path), "HEAT_PUPPET_CMD": "no-such-puppet"}
    with pytest.raises(HookFailed, match="no-such-puppet is not installed.*HEAT_PUPPET_CMD"):
        HOOK.run(make("puppet", "notice('x')"), ctx)


def test_standalone_speaks_heat_config_abi(tmp_path):
    target = tmp_path / "standalone.txt"
    dep = deployment_dict("puppet", WRITE_MANIFEST % {"target": target},
                          inputs={"greeting": "abi"}, outputs=("result",))
    reply = run_standalone("puppet", dep, {}, tmp_path)
    assert reply["deploy_status_code"] == 0, reply["deploy_stderr"]
    assert reply["result"] == "done-abi"
    assert target.read_text() == "hello abi\n"
    assert (tmp_path / "o" / f"{dep['id']}.result").exists()
