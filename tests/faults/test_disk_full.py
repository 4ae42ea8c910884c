"""The state directory's filesystem fills up (a real 4 MiB tmpfs): the journal is never torn,
the agent says why it cannot progress, and it carries on by itself when space returns."""

import errno
import json
import os
import signal
import subprocess

import pytest

from tests.support.agent import deployment, signals_for, start_agent
from tests.support.wait import wait_until

PAGE = 4096


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs mounted for this test only."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(path):
    """Write zeros to `path` until the filesystem is full; return the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            written += os.write(fd, b"\0" * PAGE)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return written


def check_state(state, cloud):
    """Every journal file whole; no temp file left behind; nothing claims more than happened:
    a deployment not yet finished on disk was signalled at most once, and only as failed
    because its result could not be recorded (the failure is sent from memory)."""
    assert not [p for p in state.rglob(".*") if p.is_file() and p.name != ".filler"]
    for path in (state / "deployments").glob("*/journal.json"):
        entry = json.loads(path.read_text())
        if entry["state"] in ("received", "running"):
            bodies = signals_for(cloud, entry["name"])
            assert bodies == [] or (len(bodies) == 1 and bodies[0]["deploy_status_code"] != 0
                                    and "could not be recorded" in bodies[0]["deploy_stderr"])


def test_disk_full_then_space_returns(fakecloud, tmp_path, small_fs):
    runs = tmp_path / "runs"
    deps = [deployment(fakecloud, f"d{i}", f"#!/bin/sh\necho d{i} >> {runs}\necho out{i}\n")
            for i in range(6)]
    fakecloud.set_metadata({"deployments": deps[:1]})
    config = tmp_path / "agent.yaml"
    config.write_text(json.dumps({"polling_interval": 0.2, "fast_poll_interval": 0.2}))
    state, log = small_fs, tmp_path / "daemon.log"
    daemon = start_agent(state, "--config", str(config), "--collectors", "request",
                         "--request-metadata-url", fakecloud.metadata_url, log=log)
    filler = state / ".filler"
    try:
        fakecloud.wait_for(lambda: len(fakecloud.signals) == 1, timeout=60)

        # Completely full: not even the new metadata can be kept. The agent says why and waits.
        size = fill(filler)
        fakecloud.set_metadata({"deployments": deps})
        wait_until(lambda: "disk full" in log.read_text(), what="the disk full message")
        assert "cannot make progress" in log.read_text()
        polls = len(fakecloud.requests)
        fakecloud.wait_for(lambda: len(fakecloud.requests) >= polls + 5, timeout=30)
        assert daemon.poll() is None
        check_state(state, fakecloud)
        assert len(fakecloud.signals) == 1

        # A little room at a time: each pass gets a bit further and stops cleanly.
        for pages in (2, 4, 8, 16):
            os.truncate(filler, size - pages * PAGE)
            size -= pages * PAGE
            polls = len(fakecloud.requests)
            fakecloud.wait_for(lambda polls=polls: len(fakecloud.requests) >= polls + 5,
                               timeout=30)
            check_state(state, fakecloud)

        filler.unlink()
        fakecloud.wait_for(lambda: len({t for _, t, _ in fakecloud.signals}) == len(deps),
                           timeout=60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    check_state(state, fakecloud)
    for i in range(len(deps)):
        bodies = signals_for(fakecloud, f"d{i}")
        assert bodies, f"d{i} never signalled"
        last = bodies[-1]
        if last["deploy_status_code"] == 0:
            assert last["deploy_stdout"] == f"out{i}\n"
        else:
            # The hook itself ran while the disk was full and could not write its output, or
            # its result could not be recorded and that failure was sent from memory: either
            # is reported as such (never a torn or missing record, never a second signal).
            assert last["deploy_stdout"] == "" or "No space left" in last["deploy_stderr"] \
                or "could not be recorded" in last["deploy_stderr"], last
            assert len(bodies) == 1, bodies
    assert signals_for(fakecloud, "d0")[0]["deploy_stdout"] == "out0\n"
    ran = runs.read_text().split()
    assert sorted(set(ran)) == [f"d{i}" for i in range(len(deps))]
    assert "interrupted" not in log.read_text()  # a full disk never burns a deployment's attempts
