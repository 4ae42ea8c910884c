"""The `local` source unites `deployments` across its files by id: a file added later adds its
deployments and hides none; one id with two contents is refused naming both files."""

from __future__ import annotations

import json

import pytest

from guestagent.collectors import local
from guestagent.errors import SourceUnavailable
from tests.support.agent import run_agent


def dep(i: int, name: str, body: str = "echo hi") -> dict:
    return {"id": f"00000000-0000-4000-8000-{i:012d}", "name": name, "group": "script",
            "config": f"#!/bin/sh\n{body}\n",
            "inputs": [{"name": "deploy_signal_transport", "value": "NO_SIGNAL"}]}


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "local-data"
    d.mkdir(mode=0o700)
    return d


def write(path, doc):
    path.write_text(json.dumps(doc))
    path.chmod(0o600)


def test_files_unite_deployments_and_merge_other_keys(data):
    write(data / "10-a.json", {"deployments": [dep(1, "a1"), dep(2, "a2")], "x": 1, "y": 1})
    write(data / "20-b.json", {"deployments": [dep(3, "b1"), dep(2, "a2")], "y": 2})
    got = local.Local([data]).collect(None).document
    assert [d["name"] for d in got["deployments"]] == ["a1", "a2", "b1"]
    assert got["x"] == 1 and got["y"] == 2  # other keys: later file wins, as before


def test_one_id_with_two_contents_names_both_files(data):
    write(data / "10-a.json", {"deployments": [dep(1, "a1")]})
    write(data / "20-b.json", {"deployments": [dep(1, "a1", body="echo other")]})
    with pytest.raises(SourceUnavailable) as err:
        local.Local([data]).collect(None)
    assert str(err.value) == (f"source local: deployment id {dep(1, 'a')['id']} is in both "
                              f"{data / '10-a.json'} and {data / '20-b.json'} with different "
                              "contents; refused until they agree")


def test_deployments_must_be_a_list(data):
    write(data / "10-a.json", {"deployments": {"id": "x"}})
    with pytest.raises(SourceUnavailable, match="10-a.json: `deployments` must be a list"):
        local.Local([data]).collect(None)


def test_agent_runs_every_files_deployments_and_a_new_file_hides_none(tmp_path, data):
    state = tmp_path / "state"
    args = ("--collectors", "local", "--local-path", str(data))
    write(data / "10-a.json", {"deployments": [dep(1, "a1"), dep(2, "a2")]})
    write(data / "20-b.json", {"deployments": [dep(3, "b1")]})
    assert run_agent(state, *args).returncode == 0
    write(data / "30-c.json", {"deployments": [dep(4, "c1")]})
    done = run_agent(state, *args)
    assert done.returncode == 0, done.stderr
    states = {json.loads(p.read_text())["name"]: json.loads(p.read_text())["state"]
              for p in state.glob("deployments/*/journal.json")}
    assert states == {"a1": "signalled", "a2": "signalled", "b1": "signalled",
                      "c1": "signalled"}
