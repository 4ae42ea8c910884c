"""`guestagent analyze`: each deployment's timeline from the journal of real agent runs."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.agent import REPO, _env, deployment, run_agent


def analyze(state, *args):
    return subprocess.run([sys.executable, "-m", "guestagent", "analyze", "--config",
                           "/dev/null", "--state-dir", str(state), *args], check=False,
                          capture_output=True, text=True, timeout=60, env=_env(None), cwd=REPO)


def test_timelines_as_json_and_table(fakecloud, tmp_path):
    state = tmp_path / "state"
    fakecloud.set_metadata({"deployments": [
        deployment(fakecloud, "quick", "#!/bin/sh\n"),
        deployment(fakecloud, "slowish", "#!/bin/sh\nsleep 0.3\nexit 3\n"),
        deployment(fakecloud, "nosignal", "#!/bin/sh\n", transport="NO_SIGNAL")]})
    run_agent(state, "--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    shown = analyze(state, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["schema"] == 1
    rows = {d["name"]: d for d in report["deployments"]}
    assert list(rows) == ["quick", "slowish", "nosignal"]
    for row in rows.values():
        assert row["received_at"] <= row["started_at"] <= row["finished_at"]
        assert row["attempts"] == 1
        assert abs(row["total_s"] - (row["queued_s"] + row["ran_s"] + (row["signal_s"] or 0))) \
            < 0.01
    slow = rows["slowish"]
    assert slow["status_code"] == 3 and slow["ran_s"] >= 0.3 and slow["signal_attempts"] == 1
    assert slow["finished_at"] <= slow["signalled_at"] and slow["signal_s"] is not None
    # No signal needed: the timeline ends when the hook finished.
    assert rows["nosignal"]["signal_s"] is None
    assert rows["nosignal"]["total_s"] == round(rows["nosignal"]["finished_at"]
                                                - rows["nosignal"]["received_at"], 3)

    table = analyze(state).stdout.splitlines()
    assert table[0].split() == ["NAME", "GROUP", "STATE", "CODE", "RECEIVED", "QUEUED", "RAN",
                                "SIGNAL", "TOTAL", "TRIES"]
    cells = next(line for line in table if line.startswith("slowish")).split()
    assert cells[1:4] == ["script", "signalled", "3"] and cells[-1] == "1/1"


def test_empty_journal_and_missing_state_dir(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    shown = analyze(state)
    assert shown.returncode == 0 and "(no deployments in the journal)" in shown.stdout
    assert json.loads(analyze(state, "--json").stdout) == {"schema": 1, "deployments": []}
    missing = analyze(tmp_path / "absent")
    assert missing.returncode == 2 and "no state directory" in missing.stderr
