"""Unit tests of the pure parts: settings precedence, merging, planning, trimming, paths."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guestagent import config, deployments, journal, signals, state
from guestagent.errors import ConfigError
from guestagent.poller import merge_documents as merge


def test_settings_precedence(tmp_path):
    ini = tmp_path / "occ.conf"
    ini.write_text("[DEFAULT]\ncollectors = heat_local,local\npolling_interval = 60\n"
                   "[local]\npath = /a,/b\n")
    yml = tmp_path / "ga.yaml"
    yml.write_text("polling_interval: 20\nhook_timeout: 50\n")
    loaded = config.load(str(yml), {"request": {"metadata_url": "http://cli"}},
                         old_config=str(ini))
    s = loaded.settings()
    assert s.collectors == ["heat_local", "local"]
    assert s.polling_interval == 20 and s.hook_timeout == 50
    assert s.sources["local"]["path"] == ["/a", "/b"]
    # The metadata adds sources and credentials; the command line still wins per key.
    meta = {"os-collect-config": {"collectors": ["request", "no-such-source"],
                                  "polling_interval": 5,
                                  "request": {"metadata_url": "http://meta", "x": 1}}}
    s = loaded.settings(meta)
    assert s.collectors == ["heat_local", "local", "request"]
    assert s.polling_interval == 5
    assert s.sources["request"] == {"metadata_url": "http://cli"}
    # What Heat does not write there is ignored and said so (tests/test_settings.py).
    assert any(m.startswith("request.x: not settable from metadata") for m in s.ignored)


def test_conditional_polling_interval_precedence(tmp_path):
    assert config.load("/dev/null", old_config=None).settings().conditional_polling_interval == 1.0
    ini = tmp_path / "occ.conf"
    ini.write_text("[DEFAULT]\nconditional_polling_interval = 7\n")
    assert config.load("/dev/null", old_config=str(ini)).settings() \
        .conditional_polling_interval == 7.0
    yml = tmp_path / "ga.yaml"
    yml.write_text("conditional_polling_interval: 3\n")
    loaded = config.load(str(yml), old_config=str(ini))
    assert loaded.settings().conditional_polling_interval == 3.0
    meta = {"os-collect-config": {"conditional_polling_interval": 2, "polling_interval": 30}}
    s = loaded.settings(meta)
    assert (s.conditional_polling_interval, s.polling_interval) == (2.0, 30.0)
    cli = config.load(str(yml), {"conditional_polling_interval": 0.5}, old_config=str(ini))
    assert cli.settings(meta).conditional_polling_interval == 0.5


@pytest.mark.parametrize("text, message", [
    ("polling_interval: soon\n", "polling_interval: 'soon' is not a number"),
    ("conditional_polling_interval: soon\n", "conditional_polling_interval: 'soon' is not a num"),
    ("conditional_polling_interval: 0\n", (r"conditional_polling_interval: 0 is out of range "
                                           r"\(allowed: a number of seconds from 0.1 to 86400\)")),
    ("collectors: [nope]\n", "collectors: unknown source nope"),
    ("max_attempts: 0\n", "max_attempts"),
    ("- a list\n", "must be a YAML mapping"),
    ("request: 3\n", "request: must be a mapping"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        config.load(str(path), old_config=None)


def test_cli_config_error_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("polling_interval: -1\n")
    proc = subprocess.run([sys.executable, "-m", "guestagent", "--once", "--config", str(path),
                           "--state-dir", str(tmp_path / "s")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "polling_interval" in proc.stderr


def test_cli_conditional_polling_interval_flag_is_validated(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "guestagent", "--once", "--config", "/dev/null",
                           "--state-dir", str(tmp_path / "s"),
                           "--conditional-polling-interval", "-1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--conditional-polling-interval: conditional_polling_interval: '-1' is out of " \
           "range (allowed: a number of seconds from 0.1 to 86400)" in proc.stderr


def test_merge_unites_deployments_by_id():
    a = {"deployments": [{"id": "1", "v": "a"}, {"id": "2"}], "k": "a", "only_a": 1}
    b = {"deployments": [{"id": "1", "v": "b"}, {"id": "3"}], "k": "b"}
    merged = merge([a, b])
    assert [d["id"] for d in merged["deployments"]] == ["1", "2", "3"]
    assert merged["deployments"][0]["v"] == "b" and merged["k"] == "b" and merged["only_a"] == 1


def test_plan_runs_unfinished_in_order_and_lists_gone():
    deps = deployments.parse({"deployments": [
        {"id": i, "group": "script", "config": ""} for i in ("a", "b", "c", "d")]})
    entries = {
        "a": journal.JournalEntry("a", "a", "a", "script", state=journal.SIGNALLED),
        "b": journal.JournalEntry("b", "b", "b", "script", state=journal.RUNNING),
        "z": journal.JournalEntry("z", "z", "z", "script", state=journal.FINISHED),
    }
    plan = deployments.plan(deps, entries, already_deployed=lambda i: i == "c")
    assert [d.id for d in plan.to_run] == ["b", "d"]
    assert plan.gone == ["z"]


def test_component_picks_the_config_for_the_action():
    dep = deployments.parse_one({"id": "x", "group": "component", "config": {"configs": [
        {"actions": ["CREATE"], "config": "create", "tool": "script"},
        {"actions": ["DELETE"], "config": "delete", "tool": "puppet"}]},
        "inputs": [{"name": "deploy_action", "value": "DELETE"}]})
    resolved = deployments.resolve_component(dep)
    assert resolved.group == "puppet" and resolved.config == "delete"
    dep = deployments.parse_one(dict(dep.raw, inputs=[{"name": "deploy_action",
                                                       "value": "SUSPEND"}]))
    assert deployments.resolve_component(dep) is None


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", ".", "..", "", "x" * 500,
                                  "\x00nul", "ok-id", "-leading"])
def test_safe_component_never_escapes(tmp_path, name):
    part = state.safe_component(name)
    assert "/" not in part and part not in (".", "..") and part and len(part) <= 100
    assert (tmp_path / part).resolve().parent == tmp_path.resolve()


def test_trim_keeps_head_and_tail_and_fits():
    reply = {"deploy_stdout": "H" * 10 + "m" * 3_000_000 + "T" * 10,
             "deploy_stderr": "e" * 2_000_000, "deploy_status_code": 0, "out": "small"}
    body = signals.trim(reply, "/state/x/response.json")
    assert len(body) <= signals.MAX_BODY
    data = json.loads(body)
    assert data["deploy_stdout"].startswith("HHHHHHHHHH") and data["deploy_stdout"].endswith("T" * 10)
    assert "/state/x/response.json" in data["deploy_stdout"]
    assert data["out"] == "small" and data["deploy_status_code"] == 0
    small = {"deploy_stdout": "x", "deploy_stderr": "", "deploy_status_code": 0}
    assert json.loads(signals.trim(small)) == small


def test_signal_target_inference_and_errors():
    t = signals.target_for({"deploy_signal_id": "http://x/y?sig=1", "deploy_signal_verb": "PUT"})
    assert (t.transport, t.verb) == ("TEMP_URL_SIGNAL", "PUT")
    assert "sig=1" not in t.describe()
    assert signals.target_for({}).transport == "NO_SIGNAL"
    with pytest.raises(Exception, match="HEAT_SIGNAL needs input"):
        signals.target_for({"deploy_signal_transport": "HEAT_SIGNAL"})
    with pytest.raises(Exception, match="unknown transport"):
        signals.target_for({"deploy_signal_transport": "PIGEON"})


def test_old_agent_markers_count_as_done(fakecloud, tmp_path):
    from tests.support.agent import deployment, run_agent
    runs = tmp_path / "runs"
    done = deployment(fakecloud, "done-before", f"#!/bin/sh\necho old >> {runs}\n")
    new = deployment(fakecloud, "new", f"#!/bin/sh\necho new >> {runs}\n")
    fakecloud.set_metadata({"deployments": [done, new]})
    state_dir = tmp_path / "state"
    markers = state_dir / "no-markers"
    markers.mkdir(parents=True)
    (markers / f"{done['id']}.json").write_text("{}")
    proc = run_agent(state_dir, "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url)
    assert proc.returncode == 0
    assert runs.read_text() == "new\n"


def test_relative_state_dir(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "guestagent", "--once", "--config", "/dev/null",
                           "--state-dir", "rel/state", "--deployed-dir", "none", "--collectors",
                           "local", "--local-path", str(repo / "examples" / "local-data")],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rel" / "state" / "hooks" / "script" / "work").is_dir()


def test_bundled_example_runs(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "guestagent", "--config", "/dev/null", "--state-dir",
            str(tmp_path / "s"), "--deployed-dir", str(tmp_path / "none")]
    proc = subprocess.run(argv + ["--once", "--collectors", "local", "--local-path",
                                  str(repo / "examples" / "local-data")],
                          capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([sys.executable, "-m", "guestagent", "status", "--json", "--config",
                          "/dev/null", "--state-dir", str(tmp_path / "s")], capture_output=True,
                         text=True, cwd=repo, check=True).stdout
    [row] = json.loads(out)["deployments"]
    assert row["name"] == "hello-world" and row["state"] == "signalled" and row["status_code"] == 0
