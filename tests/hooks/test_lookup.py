"""Which hook runs a group: --hooks-dir, then an explicitly set HEAT_CONFIG_HOOKS, then the
built-in hooks, then the default heat-config directories (which never shadow a built-in)."""

from __future__ import annotations

import pytest

from guestagent import hooks
from guestagent.errors import HookNotFound
from guestagent.hooks import script
from guestagent.hooks.external import ExternalHook
from tests.support.agent import deployment, run_agent, signals_for

MINE = '#!/bin/sh\ncat >/dev/null\necho \'{"deploy_stdout": "%s"}\'\n'


def hook_file(directory, name, says):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(MINE % says)
    path.chmod(0o755)
    return path


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A --hooks-dir, a HEAT_CONFIG_HOOKS dir and a stand-in for the default directories."""
    dirs = {name: tmp_path / name for name in ("hooks_dir", "heat_config_hooks", "default")}
    monkeypatch.setattr(hooks, "DEFAULT_DIRS", (str(dirs["default"]),))
    monkeypatch.delenv("HEAT_CONFIG_HOOKS", raising=False)
    return dirs


def test_heat_config_hooks_wins_over_builtin(places, monkeypatch):
    path = hook_file(places["heat_config_hooks"], "script", "operator")
    monkeypatch.setenv("HEAT_CONFIG_HOOKS", str(places["heat_config_hooks"]))
    assert hooks.find("script") == ExternalHook(path)


def test_hooks_dir_wins_over_heat_config_hooks(places, monkeypatch):
    hook_file(places["heat_config_hooks"], "script", "operator")
    first = hook_file(places["hooks_dir"], "script", "command line")
    monkeypatch.setenv("HEAT_CONFIG_HOOKS", str(places["heat_config_hooks"]))
    assert hooks.find("script", [places["hooks_dir"]]) == ExternalHook(first)


def test_default_directories_never_shadow_builtin(places):
    hook_file(places["default"], "script", "old heat-agents hook")
    extra = hook_file(places["default"], "salt", "third party")
    assert hooks.find("script") is script.HOOK
    assert hooks.find("salt") == ExternalHook(extra)  # still found when nothing is built in


def test_not_found_lists_every_place_in_order(places, monkeypatch):
    monkeypatch.setenv("HEAT_CONFIG_HOOKS", str(places["heat_config_hooks"]))
    with pytest.raises(HookNotFound) as err:
        hooks.find("nothing", [places["hooks_dir"]])
    text = str(err.value)
    order = [text.index(str(places[k])) for k in ("hooks_dir", "heat_config_hooks", "default")]
    assert order == sorted(order)


def test_agent_runs_the_heat_config_hooks_script(fakecloud, tmp_path):
    hook_dir = tmp_path / "operator-hooks"
    hook_file(hook_dir, "script", "from HEAT_CONFIG_HOOKS")
    dep = deployment(fakecloud, "s", "#!/bin/sh\necho builtin\n")
    fakecloud.set_metadata({"deployments": [dep]})
    proc = run_agent(tmp_path / "state", "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url,
                     env={"HEAT_CONFIG_HOOKS": str(hook_dir)})
    assert proc.returncode == 0, proc.stderr
    assert signals_for(fakecloud, "s")[0]["deploy_stdout"] == "from HEAT_CONFIG_HOOKS"
