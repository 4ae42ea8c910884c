"""Serial-console status lines: written to a real pseudo-terminal (a serial console's stand-in)
and to a file, a heartbeat on its own schedule, and a console that cannot be written (a FIFO
without a reader) costing a warning, never a stall."""

from __future__ import annotations

import logging
import os

from guestagent import console
from guestagent.journal import FINISHED, RUNNING, SIGNALLED, JournalEntry

T0 = 1764484800.0  # 2025-11-30T06:40:00Z


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def entry(name: str, state: str, code=None, attempts=1) -> JournalEntry:
    return JournalEntry(f"k-{name}", f"5b1e4c3a-{name}", name, "script", state=state,
                        status_code=code, attempts=attempts)


def test_state_lines_reach_a_terminal():
    master, slave = os.openpty()
    try:
        out = console.Console(os.ttyname(slave), clock=Clock())
        out.state_change(entry("web server\n\x1b[2J", FINISHED, code=0))
        text = os.read(master, 4096).decode()
    finally:
        os.close(master)
        os.close(slave)
    # The tty turns \n into \r\n; the name cannot break the line or move the cursor.
    assert text == ("guestagent: ts=2025-11-30T06:40:00Z event=state deployment=web_server___2J"
                    " id=5b1e4c3a state=finished code=0 attempt=1\r\n")


def test_heartbeat_keeps_its_own_schedule(tmp_path):
    path = tmp_path / "console.log"
    clock = Clock()
    out = console.from_environment({"GUESTAGENT_CONSOLE": str(path),
                                    "GUESTAGENT_CONSOLE_HEARTBEAT": "300"})
    out.clock = clock
    entries = [entry("a", SIGNALLED, code=0), entry("b", SIGNALLED, code=4),
               entry("c", RUNNING), entry("d", FINISHED, code=0)]
    assert out.heartbeat(entries, {"heat": "HTTP 503"}) is True
    clock.now += 299
    assert out.heartbeat(entries) is False
    clock.now += 1
    assert out.heartbeat(entries[:1]) is True
    lines = path.read_text().splitlines()
    assert lines == [
        ("guestagent: ts=2025-11-30T06:40:00Z event=heartbeat deployments=4 running=1 failed=1 "
        "pending_signals=1 sources_failing=1"),
        ("guestagent: ts=2025-11-30T06:45:00Z event=heartbeat deployments=1 running=0 failed=0 "
        "pending_signals=0 sources_failing=0")]


def test_off_and_unset_write_nothing():
    for value in ("", "off", "OFF", "none"):
        assert console.from_environment({"GUESTAGENT_CONSOLE": value}) is None
    assert console.from_environment({}) is None
    assert console.from_environment({"GUESTAGENT_CONSOLE": "/dev/console",
                                     "GUESTAGENT_CONSOLE_HEARTBEAT": "0"}).heartbeat_every == 0


def test_an_unwritable_console_warns_once_and_never_blocks(tmp_path, caplog):
    fifo = tmp_path / "console"
    os.mkfifo(fifo)
    out = console.Console(str(fifo), clock=Clock())
    caplog.set_level(logging.INFO, logger="guestagent")
    out.state_change(entry("a", RUNNING))  # no reader: would block forever without O_NONBLOCK
    out.state_change(entry("a", FINISHED, code=0))
    assert caplog.messages == [(f"console {fifo}: cannot write status lines: "
                               f"{os.strerror(6)}")]  # ENXIO: no reader
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        out.state_change(entry("a", SIGNALLED, code=0))
        assert os.read(reader, 4096).decode().endswith("state=signalled code=0 attempt=1\n")
    finally:
        os.close(reader)
    assert caplog.messages[-1] == f"console {fifo}: writing status lines again"
