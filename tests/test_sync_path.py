"""What the disk waits for between a change and its hook: only the deployment's own records.

Caches (source documents) and the os-collect-config files are written atomically but synced
later (state.LazySync), the `received` journal record is not synced (the `running` one
that follows is). These tests hold each half of that: what is deferred is made durable
and recoverable, and what is synced before the hook is exactly the deployment's records,
counted on the real program with strace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from guestagent.journal import Journal
from guestagent.state import LazySync, SourceCache, StateDir
from tests.support.agent import agent_argv


def test_lazy_writes_are_visible_at_once_and_the_voucher_waits_for_sync(tmp_path):
    lazy = LazySync()
    lazy.write(tmp_path / "cache.json", b'{"a": 1}')
    lazy.then(tmp_path / "marker", b"digest")
    assert (tmp_path / "cache.json").read_bytes() == b'{"a": 1}'  # readers see it now
    assert not (tmp_path / "marker").exists()  # never before what it vouches for is synced
    lazy.sync()
    assert (tmp_path / "marker").read_bytes() == b"digest"
    lazy.sync()  # nothing left: a no-op


def test_a_failed_sync_keeps_the_voucher_queued(tmp_path):
    lazy = LazySync()
    lazy.write(tmp_path / "cache.json", b"{}")
    lazy.then(tmp_path / "gone" / "marker", b"digest")  # its directory does not exist
    with pytest.raises(Exception, match="cannot write"):
        lazy.sync()
    (tmp_path / "gone").mkdir()
    lazy.sync()
    assert (tmp_path / "gone" / "marker").read_bytes() == b"digest"


def test_a_source_cache_a_crash_cut_short_reads_as_absent(tmp_path):
    statedir = StateDir(tmp_path / "state").ensure()
    statedir.save_source("local", SourceCache({"deployments": []}, etag='"1"'))
    (statedir.root / "sources" / "local.json").write_bytes(b"")  # delayed allocation, then power loss
    assert StateDir(statedir.root).ensure().load_source("local") is None


@pytest.mark.parametrize("left", [b"", b"\0" * 300, b"\n"])
def test_a_received_entry_a_crash_left_empty_is_no_entry(tmp_path, left):
    """Only the unsynced `received` record can end empty; it promised nothing."""
    statedir = StateDir(tmp_path / "state").ensure()
    j = Journal(statedir)
    j.receive(key="a", id="a", name="a", group="script", action="CREATE", now=1.0)
    (statedir.deployment_dir("a") / "journal.json").write_bytes(left)
    again = Journal(statedir)
    assert again.entries() == {} and again.corrupt == {}


def test_a_torn_entry_with_content_is_still_corrupt(tmp_path):
    statedir = StateDir(tmp_path / "state").ensure()
    Journal(statedir).receive(key="a", id="a", name="a", group="script", action="CREATE",
                              now=1.0)
    (statedir.deployment_dir("a") / "journal.json").write_bytes(b'{"key": "a", "sta')
    again = Journal(statedir)
    assert again.entries() == {} and "a" in again.corrupt


def _deployment(dep_id: str, marker) -> dict:
    return {"id": dep_id, "name": dep_id, "group": "script",
            "config": f"#!/bin/sh\necho {dep_id} >> {marker}\n",
            "inputs": [{"name": "deploy_server_id", "value": "server-1"}]}


def test_an_empty_received_entry_after_a_crash_runs_its_deployment(tmp_path):
    """End to end: the deployment a crash caught `received` (its entry empty) runs, once."""
    data, state, marker = tmp_path / "data", tmp_path / "state", tmp_path / "ran"
    data.mkdir()
    (data / "d.json").write_text(json.dumps({"deployments": [_deployment("dep-1", marker)]}))
    ddir = state / "deployments" / "dep-1"
    ddir.mkdir(parents=True, mode=0o700)
    os.chmod(state, 0o700)
    (ddir / "journal.json").write_bytes(b"")
    argv = agent_argv(state, "--once", "--collectors", "local", "--local-path", str(data))
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert marker.read_text() == "dep-1\n"
    assert json.loads((ddir / "journal.json").read_text())["state"] == "signalled"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is installed by "
                    "scripts/setup-test-env.sh")
def test_only_the_deployments_records_are_synced_before_its_hook(tmp_path):
    """strace the real agent: between the source's new document and the hook's exec the
    agent syncs 3 times (deployment.json; the `running` entry and its directory), not
    once per cache and compatibility file (13 before); afterwards all are synced."""
    data, state, marker = tmp_path / "data", tmp_path / "state", tmp_path / "ran"
    data.mkdir()
    docs = [_deployment("dep-1", marker)]
    (data / "d.json").write_text(json.dumps({"deployments": docs}))
    argv = agent_argv(state, "--once", "--collectors", "local", "--local-path", str(data))
    assert subprocess.run(argv, capture_output=True, timeout=120).returncode == 0
    docs.append(_deployment("dep-2", marker))  # the change under test: a new deployment
    (data / "d.json").write_text(json.dumps({"deployments": docs}))
    trace = tmp_path / "trace"
    run = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e",
                          "trace=fsync,fdatasync,execve,rename,renameat,renameat2", *argv],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert marker.read_text() == "dep-1\ndep-2\n"
    calls = [line for line in trace.read_text().splitlines() if "ENOENT" not in line]
    agent_pid = calls[0].split()[0]
    new_source = next(i for i, line in enumerate(calls)
                      if "rename" in line and "/sources/local.json" in line)
    hook = next(i for i, line in enumerate(calls)
                if "execve(" in line and "/hooks/script/work/dep-2" in line)
    synced = [line for line in calls[new_source:hook]
              if line.split()[0] == agent_pid and re.search(r"\bf(data)?sync\(", line)]
    assert len(synced) == 3, "\n".join(calls[new_source:hook])
    renamed = " ".join(calls[new_source:hook])
    assert "deployments/dep-2/deployment.json" in renamed
    assert "os-collect-config" in renamed or "os_config_files" in renamed
    after = " ".join(calls[hook:])
    assert "refreshed.sha256" in after  # the voucher, once the files it vouches for are synced
