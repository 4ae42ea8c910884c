"""The journal's state machine: every legal move, every illegal one refused, and the on-disk
format shared with the previous release."""

from __future__ import annotations

import json

import pytest

from guestagent import deployments, journal
from guestagent.errors import IllegalMove
from guestagent.journal import (
    FINISHED,
    GONE,
    MOVES,
    RECEIVED,
    REFUSED,
    RUNNING,
    SIGNALLED,
    STATES,
    Journal,
    JournalEntry,
)
from guestagent.state import StateDir

# One call per move, with the arguments its function takes.
CALLS = {
    "receive": lambda j, e: j.receive(key="k", id="k", name="n", group="script",
                                      action="CREATE", now=1.0),
    "start": lambda j, e: j.start(e, 2.0),
    "spawned": lambda j, e: j.spawned(e, 4242, 99, "boot"),
    "interrupt": lambda j, e: j.interrupt(e),
    "finish": lambda j, e: j.finish(e, 0, None, 3.0),
    "defer": lambda j, e: j.defer(e, "HTTP 503", 10.0, "CFN_SIGNAL"),
    "deliver": lambda j, e: j.deliver(e, 4.0, "CFN_SIGNAL"),
    "refuse": lambda j, e: j.refuse(e, "HTTP 403", "CFN_SIGNAL"),
    "forget": lambda j, e: j.forget(e),
    "report": lambda j, e: j.report(e, deployments.parse_one(
        {"id": "k", "name": "n", "group": "script", "config": ""}), 0, 5.0),
}
LEGAL = [(state, move) for move, (sources, _) in MOVES.items() for state in sources]
ILLEGAL = [(state, move) for move, (sources, _) in MOVES.items()
           for state in (None, *STATES) if state not in sources]


def _journal(tmp_path) -> Journal:
    return Journal(StateDir(tmp_path / "state").ensure())


def _entry_in(j: Journal, state: str | None) -> JournalEntry | None:
    if state is None:
        return None
    entry = JournalEntry(key="k", id="k", name="n", group="script", state=state, attempts=1)
    j._write(entry, crash_point=False)
    return entry


def test_every_move_has_a_call_and_every_state_is_reached():
    assert set(CALLS) == set(MOVES)
    assert {target for _, target in MOVES.values()} == set(STATES)


@pytest.mark.parametrize(("state", "move"), LEGAL)
def test_legal_move_is_written_and_returned(tmp_path, state, move):
    j = _journal(tmp_path)
    entry = _entry_in(j, state)
    moved = CALLS[move](j, entry)
    assert moved.state == MOVES[move][1]
    assert j.get("k") == moved
    # What is on disk reads back as the same entry, in a fresh journal (a restart).
    assert Journal(j.statedir).get("k") == moved


@pytest.mark.parametrize(("state", "move"), ILLEGAL)
def test_illegal_move_is_refused_and_changes_nothing(tmp_path, state, move):
    j = _journal(tmp_path)
    entry = _entry_in(j, state)
    before = (j.statedir.deployment_dir("k") / "journal.json").read_bytes() \
        if state is not None else None
    with pytest.raises(IllegalMove) as caught:
        if entry is None:
            j.move(None, move, key="k")  # the move functions take an entry: the table decides
        else:
            CALLS[move](j, entry)
    assert caught.value.move == move and caught.value.state == str(state)
    assert "deployment k" in str(caught.value) and repr(move) in str(caught.value)
    after = (j.statedir.deployment_dir("k") / "journal.json").read_bytes() \
        if state is not None else None
    assert before == after


def test_moves_record_what_they_say(tmp_path):
    j = _journal(tmp_path)
    e = CALLS["receive"](j, None)
    e = j.start(e, 5.0)
    assert (e.attempts, e.started_at) == (1, 5.0)
    e = j.spawned(e, 321, 77, "b")
    assert (e.hook_pgid, e.hook_started, e.hook_boot_id) == (321, 77, "b")
    e = j.interrupt(e)
    assert (e.state, e.attempts, e.hook_pgid) == (RECEIVED, 0, None)
    e = j.finish(j.start(e, 6.0), 2, "boom", 7.0)
    assert (e.state, e.status_code, e.error, e.finished_at) == (FINISHED, 2, "boom", 7.0)
    e = j.defer(e, "HTTP 503", 60.0, "HEAT_SIGNAL")
    assert (e.signal_attempts, e.next_signal_at, e.transport) == (1, 60.0, "HEAT_SIGNAL")
    assert e.signal_pending
    e = j.deliver(e, 61.0, "HEAT_SIGNAL")
    assert (e.state, e.signal_attempts, e.signal_error, e.signalled_at) == \
        (SIGNALLED, 2, None, 61.0)
    assert not e.signal_pending and e.done
    assert j.forget(e).state == GONE


def test_refused_is_written_as_the_previous_release_wrote_it(tmp_path):
    j = _journal(tmp_path)
    e = j.finish(j.start(CALLS["receive"](j, None), 1.0), 0, None, 2.0)
    j.refuse(e, "HTTP 403", "CFN_SIGNAL")
    on_disk = json.loads((j.statedir.deployment_dir("k") / "journal.json").read_text())
    assert on_disk["state"] == "finished" and on_disk["signal_final"] is True
    assert Journal(j.statedir).get("k").state == REFUSED


def test_previous_release_entries_load(tmp_path):
    """Entries exactly as the previous release wrote them (all its fields) load and resume."""
    statedir = StateDir(tmp_path / "state").ensure()
    old = {"key": "a", "id": "a", "name": "a", "group": "script", "state": "running",
           "action": "CREATE", "attempts": 1, "status_code": None, "error": None,
           "received_at": 1.0, "started_at": 2.0, "finished_at": None, "signalled_at": None,
           "transport": None, "signal_attempts": 0, "next_signal_at": 0.0,
           "signal_error": None, "signal_final": False}
    refused = dict(old, key="b", id="b", state="finished", signal_final=True, status_code=0)
    pending = dict(old, key="c", id="c", state="finished", status_code=0)
    for data in (old, refused, pending):
        ddir = statedir.deployment_dir(data["key"])
        ddir.mkdir()
        (ddir / "journal.json").write_text(json.dumps(data))
    j = Journal(statedir)
    assert {k: e.state for k, e in j.entries().items()} == \
        {"a": RUNNING, "b": REFUSED, "c": FINISHED}
    assert [e.key for e in j.pending_signals()] == ["c"]
    assert j.start(j.get("a"), 3.0).attempts == 2


def test_a_corrupt_entry_is_reported_not_loaded(tmp_path):
    statedir = StateDir(tmp_path / "state").ensure()
    ddir = statedir.deployment_dir("x")
    ddir.mkdir()
    (ddir / "journal.json").write_text(json.dumps({"key": "x", "state": "exploded"}))
    j = Journal(statedir)
    assert j.entries() == {} and "x" in j.corrupt


def test_states_are_named_in_one_place():
    assert journal.DONE_STATES == {FINISHED, SIGNALLED, REFUSED, GONE}


def test_a_corrupt_entry_fails_its_deployment_and_is_not_run_again(tmp_path):
    """The documented rule: a deployment whose journal entry is corrupt is not run blind a
    second time; --once fails and `status` names the directory."""
    import subprocess

    from guestagent import status
    from tests.support.agent import agent_argv

    data = tmp_path / "data"
    data.mkdir()
    marker = tmp_path / "ran"
    (data / "d.json").write_text(json.dumps({"deployments": [
        {"id": "dep-1", "group": "script", "config": f"#!/bin/sh\necho x >> {marker}\n"}]}))
    state = tmp_path / "state"
    argv = agent_argv(state, "--once", "--collectors", "local", "--local-path", str(data))
    assert subprocess.run(argv, capture_output=True, timeout=120).returncode == 0
    (state / "deployments" / "dep-1" / "journal.json").write_text("{not json")
    (state / "refreshed.sha256").unlink()
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 1
    assert "corrupt" in rerun.stderr and "not run again" in rerun.stderr
    assert marker.read_text() == "x\n"
    snap = status.snapshot(state)
    assert snap.verdict() == status.FAILED
    assert any("dep-1" in r for r in snap.reasons)
