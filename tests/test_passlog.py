"""passlog: the DEBUG lines for polls and plan decisions, the INFO line for a deployment that
leaves the metadata, fed by the real collectors, parser and planner."""

from __future__ import annotations

import json
import logging

from guestagent import deployments, passlog
from guestagent.collectors import local
from guestagent.collectors.base import NOT_MODIFIED
from guestagent.journal import FINISHED, RUNNING, SIGNALLED, JournalEntry


def dep(i: int, name: str) -> dict:
    return {"id": f"00000000-0000-4000-8000-{i:012d}", "name": name, "group": "script",
            "config": "#!/bin/sh\n"}


def test_poll_lines_for_a_read_an_unchanged_poll_and_a_failure(tmp_path, caplog):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    doc = {"deployments": [dep(1, "a")]}
    (data / "a.json").write_text(json.dumps(doc))
    source = local.Local([data])
    caplog.set_level(logging.DEBUG, logger="guestagent")
    first = source.collect(None)
    passlog.poll("local", first, 0.0012)
    second = NOT_MODIFIED  # what an unchanged poll answers once the files' stamps settle
    passlog.poll("local", second, 0.0003)
    passlog.poll("request", second, 0.01)
    passlog.poll("heat", None, 5.0, error=RuntimeError("heat: HTTP 503"))
    size = len(json.dumps(doc).encode())
    assert caplog.messages == [
        f"poll source=local result=read bytes={size} time=0.001s",
        "poll source=local result=not-modified time=0.000s",
        "poll source=request http=304 time=0.010s",
        "poll source=heat result=failed time=5.000s error=heat: HTTP 503"]


def test_poll_is_silent_above_debug(caplog):
    caplog.set_level(logging.INFO, logger="guestagent")
    passlog.poll("request", None, 1.0, error=RuntimeError("x"))
    assert caplog.messages == []


def test_plan_decisions_say_why(caplog):
    parsed = deployments.parse({"deployments": [dep(1, "new"), dep(2, "done"), dep(3, "cut"),
                                                dep(4, "marked")]})
    keys = {d.name: d.key for d in parsed}
    journal = {
        keys["done"]: JournalEntry(keys["done"], parsed[1].id, "done", "script",
                                   state=SIGNALLED, status_code=0),
        keys["cut"]: JournalEntry(keys["cut"], parsed[2].id, "cut", "script", state=RUNNING,
                                  attempts=1),
        "old-key": JournalEntry("old-key", "old-id", "old", "script", state=FINISHED,
                                status_code=2)}
    marked = parsed[3].id
    plan = deployments.plan(parsed, journal, lambda i: i == marked)
    items = passlog.decisions(parsed, journal, plan.to_run, plan.gone)
    caplog.set_level(logging.DEBUG, logger="guestagent")
    passlog.plan(items)
    ids = {d.name: d.id for d in parsed}
    assert caplog.messages == [
        f"plan deployment=new ({ids['new']}) decision=run why=new in the metadata",
        f"plan deployment=done ({ids['done']}) decision=skip why=already signalled (status 0)",
        f"plan deployment=cut ({ids['cut']}) decision=run why=unfinished: running, attempt 2",
        (f"plan deployment=marked ({marked}) decision=skip why=an old heat-config marker says "
        "it was deployed"),
        "plan deployment=old (old-id) decision=gone why=no longer in the metadata (was finished)"]


def test_gone_is_logged_at_info(caplog):
    caplog.set_level(logging.INFO, logger="guestagent")
    passlog.gone(JournalEntry("k", "old-id", "web", "docker-compose", state=SIGNALLED))
    assert caplog.records[0].levelno == logging.INFO
    assert caplog.messages == [("gone deployment=web (old-id) was=signalled: no longer in the "
                               "metadata; its hook's cleanup runs")]
