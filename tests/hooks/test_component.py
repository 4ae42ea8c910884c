"""The standalone component hook: the config for the current action runs with its tool."""

from __future__ import annotations

from tests.hooks.conftest import deployment_dict, run_standalone


def component(tmp_path) -> dict:
    return {"configs": [
        {"actions": ["CREATE", "UPDATE"], "tool": "script",
         "config": f"#!/bin/sh\necho created > {tmp_path}/state\necho ok > $heat_outputs_path.result\n"},
        {"actions": ["DELETE"], "tool": "script",
         "config": f"#!/bin/sh\necho deleted > {tmp_path}/state\n"}]}


def test_standalone_runs_entry_for_action(tmp_path):
    reply = run_standalone("component", deployment_dict("component", component(tmp_path),
                                                        outputs=("result",)), {}, tmp_path)
    assert reply["deploy_status_code"] == 0, reply["deploy_stderr"]
    assert reply["result"] == "ok\n"
    assert (tmp_path / "state").read_text() == "created\n"
    reply = run_standalone("component", deployment_dict("component", component(tmp_path),
                                                        action="DELETE"), {}, tmp_path)
    assert reply["deploy_status_code"] == 0
    assert (tmp_path / "state").read_text() == "deleted\n"
    reply = run_standalone("component", deployment_dict("component", component(tmp_path),
                                                        action="SUSPEND"), {}, tmp_path)
    assert reply["deploy_status_code"] == 0 and "no component config" in reply["deploy_stdout"]


def test_bad_component_names_field(tmp_path):
    reply = run_standalone("component", deployment_dict("component", {"configs": "nope"},
                                                        name="comp"),
                           {}, tmp_path)
    assert reply["deploy_status_code"] != 0
    assert "comp" in reply["deploy_stderr"] and "config.configs" in reply["deploy_stderr"]
