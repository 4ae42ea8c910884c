"""The ansible hook against a real ansible-playbook (ansible-core installed in the venv)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from guestagent.errors import HookFailed
from guestagent.hooks.ansible import HOOK
from tests.hooks.conftest import deployment_dict, make, mode_of, run_standalone

pytestmark = pytest.mark.skipif(
    shutil.which("ansible-playbook") is None
    and not (Path(sys.executable).parent / "ansible-playbook").exists(),
    reason="ansible-core not installed (scripts/setup-test-env.sh installs it)")

WRITE_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: write the greeting
      copy:
        dest: "%(target)s"
        content: "hello {{ greeting }}\\n"
    - name: report an output
      copy:
        dest: "{{ heat_outputs_path }}.result"
        content: "done-{{ greeting }}"
"""

TAGGED_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - copy: {dest: "%(dir)s/a", content: a}
      tags: [wanted]
    - copy: {dest: "%(dir)s/b", content: b}
      tags: [other]
"""


def test_playbook_writes_file_from_input_and_reports_output(ctx, tmp_path):
    target = tmp_path / "hello.txt"
    dep = make("ansible", WRITE_PLAYBOOK % {"target": target},
               inputs={"greeting": "world", "deploy_password": "s3cret"}, outputs=("result",))
    result = HOOK.run(dep, ctx)
    assert result.status_code == 0, result.stdout + result.stderr
    assert target.read_text() == "hello world\n"
    assert result.outputs == {"result": "done-world"}
    variables = ctx.work_dir / f"{dep.id}_variables.json"
    assert mode_of(variables) == 0o600 and mode_of(ctx.work_dir) == 0o700
    data = json.loads(variables.read_text())
    assert data["heat_config_id"] == dep.id and data["greeting"] == "world"
    assert data["heat_outputs_path"] == str(ctx.outputs_dir / dep.id)
    assert "s3cret" not in result.stdout + result.stderr


def test_failing_task_is_a_failure_with_its_message(ctx):
    playbook = ("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                "    - fail: {msg: the task said no}\n")
    result = HOOK.run(make("ansible", playbook), ctx)
    assert result.status_code != 0
    assert "the task said no" in result.stdout + result.stderr


def test_tags_and_skip_tags_honoured(ctx, tmp_path):
    only = tmp_path / "only"
    only.mkdir()
    result = HOOK.run(make("ansible", TAGGED_PLAYBOOK % {"dir": only},
                           options={"tags": "wanted"}), ctx)
    assert result.status_code == 0, result.stdout + result.stderr
    assert (only / "a").exists() and not (only / "b").exists()
    skip = tmp_path / "skip"
    skip.mkdir()
    result = HOOK.run(make("ansible", TAGGED_PLAYBOOK % {"dir": skip},
                           options={"skip_tags": ["wanted"]}), ctx)
    assert result.status_code == 0, result.stdout + result.stderr
    assert not (skip / "a").exists() and (skip / "b").exists()


def test_interpreter_pinned_to_ours(ctx, tmp_path):
    # The interpreter that really ran the modules, as the python facts report it.
    target = tmp_path / "interp"
    playbook = ("- hosts: localhost\n  gather_facts: true\n  gather_subset: [min]\n  tasks:\n"
                f"    - copy: {{dest: '{target}', content: '{{{{ ansible_facts.python.executable }}}}'}}\n")
    result = HOOK.run(make("ansible", playbook), ctx)
    assert result.status_code == 0, result.stdout + result.stderr
    assert target.read_text() == sys.executable


def test_play_keywords_still_win_over_the_local_defaults(ctx, tmp_path):
    # A play's own interpreter wins (the pin is a setting, not an extra-var).
    target = tmp_path / "interp"
    playbook = ("- hosts: localhost\n  gather_facts: true\n  gather_subset: [min]\n"
                "  vars: {ansible_python_interpreter: /usr/bin/python3}\n  tasks:\n"
                f"    - copy: {{dest: '{target}', content: '{{{{ ansible_facts.python.executable }}}}'}}\n")
    result = HOOK.run(make("ansible", playbook), ctx)
    assert result.status_code == 0, result.stdout + result.stderr
    assert target.read_text() == "/usr/bin/python3"


def test_rerun_rewrites_working_files(ctx, tmp_path):
    dep = make("ansible", WRITE_PLAYBOOK % {"target": tmp_path / "x"}, inputs={"greeting": "a"})
    HOOK.run(dep, ctx)
    first = (ctx.work_dir / f"{dep.id}_playbook.yaml").read_text()
    HOOK.run(dep, ctx)
    assert (ctx.work_dir / f"{dep.id}_playbook.yaml").read_text() == first


def test_missing_tool_says_which_and_how(ctx, tmp_path):
    ctx.env = {"PATH": str(tmp_path), "HEAT_ANSIBLE_CMD": "no-such-ansible-playbook"}
    with pytest.raises(HookFailed, match="no-such-ansible-playbook is not installed"):
        HOOK.run(make("ansible", "- hosts: localhost\n"), ctx)


def test_standalone_speaks_heat_config_abi(tmp_path):
    target = tmp_path / "standalone.txt"
    dep = deployment_dict("ansible", WRITE_PLAYBOOK % {"target": target},
                          inputs={"greeting": "abi"}, outputs=("result",))
    reply = run_standalone("ansible", dep, {}, tmp_path)
    assert reply["deploy_status_code"] == 0, reply["deploy_stdout"] + reply["deploy_stderr"]
    assert reply["result"] == "done-abi"
    assert target.read_text() == "hello abi\n"


def test_timeout_kills_the_run(ctx, tmp_path):
    marker = tmp_path / "after-sleep"
    playbook = ("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                "    - command: sleep 60\n"
                f"    - copy: {{dest: '{marker}', content: late}}\n")
    result = HOOK.run(make("ansible", playbook, options={"timeout": 4}), ctx)
    assert result.status_code == 124
    assert "did not finish within 4 s; its process group was killed" in result.stderr
    assert not marker.exists()
