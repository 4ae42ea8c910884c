"""The reverse direction: an image still run by heat-agents' `55-heat-config` uses
guestagent's hook executables (linked where heat-config looks for hooks) and gets, byte for
byte, the reply heat-agents' own hooks give.

The runner is tests/support/heat_config_driver.py (its protocol, written here). The replies
expected are heat-agents' hook reply facts, encoded below: nothing is fetched or vendored.
The tools are fakes with fixed output (real puppet and ansible print timings), so the bytes
compared are the reply's framing: keys, their order, values and types.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.support import heat_config_driver

BIN = Path(sys.executable).parent

FAKE_PUPPET = """#!/bin/sh
printf 'Notice: Applied catalog\\n'
printf 'Warning: deprecated\\n' >&2
printf 'from puppet' > "$FACTER_heat_outputs_path.result"
exit 2
"""

FAKE_ANSIBLE = """#!/usr/bin/env python3
import json, sys
args = sys.argv[1:]
variables = json.load(open(args[args.index("--extra-vars") + 1][1:]))
open(variables["heat_outputs_path"] + ".result", "w").write("from ansible")
print("PLAY [localhost]")
print("warn", file=sys.stderr)
sys.exit(int(variables.get("fail_with", 0)))
"""


def upstream_reply(framing: str, stdout: str, stderr: str, status: int,
                   outputs: dict) -> dict:
    """The reply heat-agents' hooks print. script and ansible: the outputs written, then
    deploy_stdout, deploy_stderr, deploy_status_code. puppet: deploy_stdout, deploy_stderr,
    then the outputs, then deploy_status_code (puppet's 2, "changes applied", becomes 0)."""
    streams = {"deploy_stdout": stdout, "deploy_stderr": stderr}
    if framing == "puppet":
        return {**streams, **outputs, "deploy_status_code": 0 if status in (0, 2) else status}
    return {**outputs, **streams, "deploy_status_code": status}


@pytest.fixture
def heat_config(tmp_path):
    """Hooks dir of links to guestagent's hook executables, a notifier that records what it
    is given, and the runner's environment."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for group in ("script", "puppet", "ansible"):
        (hooks / group).symlink_to(BIN / f"guestagent-hook-{group}")
    notified = tmp_path / "notified"
    notified.mkdir()
    notify = tmp_path / "notify"
    notify.write_text(f'#!/bin/sh\ncat > "{notified}/$(basename "$1").stdin"\n')
    notify.chmod(0o755)
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, text in (("puppet", FAKE_PUPPET), ("ansible-playbook", FAKE_ANSIBLE)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    env = dict(os.environ, HEAT_CONFIG_HOOKS=str(hooks), HEAT_CONFIG_NOTIFY=str(notify),
               HEAT_CONFIG_DEPLOYED=str(tmp_path / "deployed"),
               HEAT_SHELL_CONFIG=str(tmp_path / "heat-config"),
               HEAT_PUPPET_CMD=str(tools / "puppet"),
               HEAT_ANSIBLE_CMD=str(tools / "ansible-playbook"))
    for tool in ("SCRIPT", "PUPPET", "ANSIBLE"):
        env[f"HEAT_{tool}_WORKING"] = str(tmp_path / f"work-{tool.lower()}")
        env[f"HEAT_{tool}_OUTPUTS"] = str(tmp_path / f"out-{tool.lower()}")

    class Runner:
        def __call__(self, configs: list[dict], environ: dict = env) -> dict[str, bytes]:
            Path(environ["HEAT_SHELL_CONFIG"]).write_text(json.dumps(configs))
            heat_config_driver.run(environ)
            return {c["id"]: (notified / f"{c['id']}.json.stdin").read_bytes()
                    for c in configs}

        def real(self, configs: list[dict]) -> dict[str, bytes]:
            """The same, with the real puppet and ansible-playbook."""
            plain = {k: v for k, v in env.items()
                     if k not in ("HEAT_PUPPET_CMD", "HEAT_ANSIBLE_CMD")}
            return self(configs, plain)
    return Runner()


def config(dep_id: str, group: str, text: str, **inputs) -> dict:
    return {"id": dep_id, "name": f"{group}-dep", "group": group, "config": text,
            "options": {}, "creation_time": "2026-11-21T12:00:00Z",
            "inputs": [{"name": k, "type": "String", "value": v} for k, v in inputs.items()]
            + [{"name": "deploy_action", "value": "CREATE"}],
            "outputs": [{"name": "result"}, {"name": "never_written"}]}


SCRIPT = """#!/bin/sh
echo "count=$count"
echo warn >&2
printf 42 > "$heat_outputs_path.result"
exit ${fail_with:-0}
"""


def test_script_replies_byte_identical(heat_config):
    ok = config("s-ok", "script", SCRIPT, count=3)  # a String-typed number: the runner's str()
    failed = config("s-failed", "script", SCRIPT, count="x", fail_with="5")
    sent = heat_config([ok, failed])
    assert sent["s-ok"] == json.dumps(
        upstream_reply("script", "count=3\n", "warn\n", 0, {"result": "42"})).encode()
    assert sent["s-failed"] == json.dumps(
        upstream_reply("script", "count=x\n", "warn\n", 5, {"result": "42"})).encode()


def test_ansible_replies_byte_identical(heat_config):
    play = "- hosts: localhost\n  tasks: []\n"
    sent = heat_config([config("a-ok", "ansible", play),
                        config("a-failed", "ansible", play, fail_with="4")])
    for dep_id, status in (("a-ok", 0), ("a-failed", 4)):
        assert sent[dep_id] == json.dumps(upstream_reply(
            "ansible", "PLAY [localhost]\n", "warn\n", status, {"result": "from ansible"})
        ).encode()


def test_puppet_replies_byte_identical(heat_config):
    sent = heat_config([config("p-ok", "puppet", "notice('hi')\n")])
    assert sent["p-ok"] == json.dumps(upstream_reply(
        "puppet", "Notice: Applied catalog\n", "Warning: deprecated\n", 2,
        {"result": "from puppet"})).encode()


def test_puppet_reply_same_content(heat_config):
    """What the puppet reply already matches: every key and value (order aside)."""
    sent = heat_config([config("p-same", "puppet", "notice('hi')\n")])
    assert json.loads(sent["p-same"]) == upstream_reply(
        "puppet", "Notice: Applied catalog\n", "Warning: deprecated\n", 2,
        {"result": "from puppet"})


def test_real_ansible_and_puppet_reply_framing(heat_config):
    """With the real tools (their output carries timings, so not byte-compared): the reply
    has heat-agents' keys, types and values; ansible's also its key order."""
    import shutil

    if not shutil.which("puppet"):
        pytest.skip("puppet is not installed (scripts/setup-test-env.sh installs it)")
    play = ("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
            "  - copy: {dest: '{{ heat_outputs_path }}.result', content: 'from {{ who }}'}\n")
    manifest = ("file { \"${facts['heat_outputs_path']}.result\": "
                "content => \"from ${facts['who']}\" }\n")
    ansible = config("real-a", "ansible", play, who="ansible")
    puppet = config("real-p", "puppet", manifest, who="puppet")
    sent = heat_config.real([ansible, puppet])
    reply = json.loads(sent["real-a"])
    assert list(reply) == ["result", "deploy_stdout", "deploy_stderr", "deploy_status_code"]
    assert (reply["result"], reply["deploy_status_code"]) == ("from ansible", 0), reply
    assert "PLAY [localhost]" in reply["deploy_stdout"]
    reply = json.loads(sent["real-p"])
    assert set(reply) == {"deploy_stdout", "deploy_stderr", "result", "deploy_status_code"}
    assert (reply["result"], reply["deploy_status_code"]) == ("from puppet", 0), reply
    assert "Applied catalog" in reply["deploy_stdout"]


def test_old_runner_with_guestagents_notify_reaches_heat(heat_config, fakecloud, tmp_path):
    """The whole old chain on guestagent's parts: the runner, guestagent's script hook and
    guestagent's heat-config-notify (the wrapper the installer places) to a Heat signal URL."""
    from guestagent import install
    from tests.support.agent import deployment, signals_for

    root = tmp_path / "root"
    install.install(root, BIN)
    dep = deployment(fakecloud, "chain", SCRIPT, inputs=[{"name": "count", "value": "7"}],
                     outputs=["result"])
    env = dict(os.environ, HEAT_CONFIG_HOOKS=str(tmp_path / "hooks"),
               HEAT_CONFIG_NOTIFY=str(root / "usr/local/bin/heat-config-notify"),
               HEAT_CONFIG_DEPLOYED=str(tmp_path / "deployed-chain"),
               HEAT_SHELL_CONFIG=str(tmp_path / "heat-config-chain"),
               HEAT_SCRIPT_WORKING=str(tmp_path / "w"), HEAT_SCRIPT_OUTPUTS=str(tmp_path / "o"))
    Path(env["HEAT_SHELL_CONFIG"]).write_text(json.dumps([dep]))
    heat_config_driver.run(env)
    [body] = signals_for(fakecloud, "chain")
    assert list(body.items()) == list(upstream_reply(
        "script", "count=7\n", "warn\n", 0, {"result": "42"}).items())
