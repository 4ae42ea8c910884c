"""A hostile filesystem (issue 11, items 6, 8 and 9): foreign or open state directories,
config files and hooks directories are refused (exit 2, naming the path); planted symbolic
links are never written through; outputs that are FIFOs, links to /dev/zero or directories
fail that output without blocking; captures stay small on disk and a full disk fails the
deployment without wedging the agent. Real files, real processes, a real tmpfs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guestagent import capture, fstrust, process
from guestagent import hooks as hooks_pkg
from guestagent.errors import UntrustedPath
from guestagent.state import StateDir, ensure_dir
from tests.support.agent import deployment, run_agent, signals_for

OTHER_UID = 4321


def once(cloud, state, *extra):
    return run_agent(state, "--collectors", "request", "--request-metadata-url",
                     cloud.metadata_url, *extra)


# -- ownership and modes --------------------------------------------------------------------

def test_state_dir_owned_by_another_user_is_refused_with_exit_2(fakecloud, tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, OTHER_UID, OTHER_UID)
    fakecloud.set_metadata({"deployments": []})
    proc = once(fakecloud, state)
    assert proc.returncode == 2
    assert f"state directory {state}: owned by uid {OTHER_UID}" in proc.stderr
    assert os.stat(state).st_uid == OTHER_UID and not (state / "lock").exists()


def test_state_dir_writable_by_others_is_refused(fakecloud, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    proc = once(fakecloud, state)
    assert proc.returncode == 2
    assert "writable by group or others (mode 0777)" in proc.stderr
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o777  # refused, not "fixed"


def test_state_dir_naming_a_file_is_refused_and_left_alone(fakecloud, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.chmod(victim, 0o644)
    proc = once(fakecloud, victim)
    assert proc.returncode == 2 and str(victim) in proc.stderr
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o644 and victim.read_text() == "precious"


def test_config_file_of_another_user_is_refused(fakecloud, tmp_path):
    conf = tmp_path / "guestagent.yaml"
    conf.write_text(f"hooks_dirs: [{tmp_path}]\n")
    os.chown(conf, OTHER_UID, 0)
    proc = subprocess.run([*_argv(tmp_path / "state", conf), "--request-metadata-url",
                           fakecloud.metadata_url], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert f"config file {conf}: owned by uid {OTHER_UID}" in proc.stderr


def test_world_writable_hooks_dir_is_refused_at_start(fakecloud, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    os.chmod(hooks, 0o777)
    conf = tmp_path / "guestagent.yaml"
    conf.write_text(f"hooks_dirs: [{hooks}]\n")
    proc = subprocess.run([*_argv(tmp_path / "state", conf), "--request-metadata-url",
                           fakecloud.metadata_url], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert f"hooks directory {hooks}: writable by group or others" in proc.stderr


def test_hook_in_a_foreign_directory_is_refused_at_start_and_at_lookup(fakecloud, tmp_path):
    hooks, ran = tmp_path / "hooks", tmp_path / "ran"
    hooks.mkdir()
    hook = hooks / "frob"
    hook.write_text(f"#!/bin/sh\ntouch {ran}\necho '{{}}'\n")
    hook.chmod(0o755)
    os.chown(hooks, OTHER_UID, OTHER_UID)
    fakecloud.set_metadata({"deployments": [deployment(fakecloud, "frob", "x", group="frob")]})
    proc = once(fakecloud, tmp_path / "state", "--hooks-dir", str(hooks))
    assert proc.returncode == 2 and not ran.exists()
    assert f"hooks directory {hooks}: owned by uid {OTHER_UID}" in proc.stderr
    # Turned foreign after the start: the lookup refuses it (the deployment fails with this).
    with pytest.raises(UntrustedPath, match=f"hooks directory {hooks}: owned by uid"):
        hooks_pkg.find("frob", [hooks])
    os.chown(hooks, 0, 0)
    os.chown(hook, OTHER_UID, 0)
    with pytest.raises(UntrustedPath, match=f"hook {hook}: owned by uid {OTHER_UID}"):
        hooks_pkg.find("frob", [hooks])
    os.chown(hook, 0, 0)
    assert hooks_pkg.find("frob", [hooks]).path == hook


def _argv(state: Path, conf: Path) -> list[str]:
    return [sys.executable, "-m", "guestagent", "--once", "--config", str(conf),
            "--state-dir", str(state), "--deployed-dir", str(state / "no-markers"),
            "--collectors", "request"]


# -- symbolic links under the state directory ------------------------------------------------

def test_symlink_at_lock_is_not_truncated(fakecloud, tmp_path):
    state, victim = tmp_path / "state", tmp_path / "victim"
    StateDir(state).ensure()
    victim.write_text("keep me")
    (state / "lock").symlink_to(victim)
    proc = once(fakecloud, state)
    assert proc.returncode == 2
    assert f"file {state / 'lock'}: a symbolic link, not written through" in proc.stderr
    assert victim.read_text() == "keep me"


def test_symlink_at_capture_file_is_not_written_through(fakecloud, tmp_path):
    state, victim = tmp_path / "state", tmp_path / "victim"
    victim.write_text("keep me")
    dep = deployment(fakecloud, "planted", "#!/bin/sh\necho overwrite\n")
    fakecloud.set_metadata({"deployments": [dep]})
    ddir = state / "deployments" / dep["id"]
    ddir.mkdir(parents=True)
    (ddir / "stdout").symlink_to(victim)
    proc = once(fakecloud, state)
    assert victim.read_text() == "keep me"
    [body] = signals_for(fakecloud, "planted")
    assert body["deploy_status_code"] != 0
    assert f"file {ddir / 'stdout'}: a symbolic link, not written through" in body["deploy_stderr"]
    assert "Traceback" not in proc.stderr


def test_links_at_journal_and_response_are_replaced_not_followed(fakecloud, tmp_path):
    state, victim = tmp_path / "state", tmp_path / "victim"
    victim.write_text("keep me")
    dep = deployment(fakecloud, "linked", "#!/bin/sh\necho ran\n")
    fakecloud.set_metadata({"deployments": [dep]})
    ddir = state / "deployments" / dep["id"]
    ddir.mkdir(parents=True)
    for name in ("journal.json", "response.json", "deployment.json"):
        (ddir / name).symlink_to(victim)
    once(fakecloud, state)
    assert victim.read_text() == "keep me"
    assert not (ddir / "journal.json").is_symlink()
    assert json.loads((ddir / "journal.json").read_text())["state"] == "signalled"


def test_symlinked_deployment_dir_is_refused_not_chmodded(tmp_path):
    state, elsewhere = StateDir(tmp_path / "state").ensure(), tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    os.chmod(elsewhere, 0o755)
    (state.root / "deployments" / "d1").symlink_to(elsewhere)
    with pytest.raises(UntrustedPath, match="is a symbolic link"):
        ensure_dir(state.deployment_dir("d1"))
    assert stat.S_IMODE(os.stat(elsewhere).st_mode) == 0o755


def test_foreign_directory_under_state_is_refused(tmp_path):
    state = StateDir(tmp_path / "state").ensure()
    foreign = state.root / "deployments" / "d2"
    foreign.mkdir()
    os.chown(foreign, OTHER_UID, OTHER_UID)
    with pytest.raises(UntrustedPath, match=f"owned by uid {OTHER_UID}"):
        ensure_dir(foreign)


def test_open_for_writing_refuses_fifo_device_and_foreign_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UntrustedPath, match="not a regular file"):
        fstrust.open_for_writing(fifo)  # no reader: would block forever without O_NONBLOCK
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    with pytest.raises(UntrustedPath, match="symbolic link"):
        fstrust.open_for_writing(link)
    foreign = tmp_path / "foreign"
    foreign.write_text("theirs")
    os.chown(foreign, OTHER_UID, OTHER_UID)
    with pytest.raises(UntrustedPath, match=f"owned by uid {OTHER_UID}"):
        fstrust.open_for_writing(foreign)
    assert foreign.read_text() == "theirs"


# -- outputs that are not files ----------------------------------------------------------------

def test_fifo_dev_zero_and_directory_outputs_fail_without_blocking(fakecloud, tmp_path):
    script = ("#!/bin/sh\nmkfifo \"$heat_outputs_path.fifo\"\n"
              "ln -s /dev/zero \"$heat_outputs_path.zero\"\n"
              "mkdir \"$heat_outputs_path.dir\"\n"
              "printf fine > \"$heat_outputs_path.good\"\n")
    dep = deployment(fakecloud, "outs", script, outputs=["fifo", "zero", "dir", "good"])
    fakecloud.set_metadata({"deployments": [dep]})
    started = time.monotonic()
    proc = once(fakecloud, tmp_path / "state")
    assert time.monotonic() - started < 60  # a FIFO read would block until the test timeout
    assert "Traceback" not in proc.stderr
    [body] = signals_for(fakecloud, "outs")
    assert body["deploy_status_code"] != 0
    err = body["deploy_stderr"]
    assert "output 'fifo':" in err and "is a FIFO, not a regular file" in err
    assert "output 'zero':" in err and "is a symbolic link, not a regular file" in err
    assert "output 'dir':" in err and "is a directory" in err
    assert "output 'good'" not in err

    # A second run clears what the first left (the directory included) and succeeds.
    fixed = dict(dep, id=dep["id"][:-4] + "beef", config="#!/bin/sh\nprintf ok > "
                 "\"$heat_outputs_path.good\"\n")
    fakecloud.set_metadata({"deployments": [fixed]})
    once(fakecloud, tmp_path / "state")
    assert signals_for(fakecloud, "outs")[-1]["deploy_status_code"] == 0


def test_output_larger_than_a_signal_fails_naming_it(fakecloud, tmp_path):
    script = "#!/bin/sh\nhead -c 1500000 /dev/zero | tr '\\0' y > \"$heat_outputs_path.big\"\n"
    dep = deployment(fakecloud, "bigout", script, outputs=["big"])
    fakecloud.set_metadata({"deployments": [dep]})
    once(fakecloud, tmp_path / "state")
    [body] = signals_for(fakecloud, "bigout")
    assert body["deploy_status_code"] != 0
    assert "output 'big':" in body["deploy_stderr"]
    assert "is 1500000 bytes; at most 1048576 can be signalled" in body["deploy_stderr"]


def test_outputs_that_together_exceed_heats_limit_fail_naming_them(fakecloud, tmp_path):
    script = ("#!/bin/sh\nhead -c 700000 /dev/zero | tr '\\0' a > \"$heat_outputs_path.one\"\n"
              "head -c 600000 /dev/zero | tr '\\0' b > \"$heat_outputs_path.two\"\n")
    dep = deployment(fakecloud, "twoout", script, outputs=["one", "two"])
    fakecloud.set_metadata({"deployments": [dep]})
    once(fakecloud, tmp_path / "state")
    [body] = signals_for(fakecloud, "twoout")
    assert body["deploy_status_code"] == 1 and "one" not in body and "two" not in body
    assert "output 'one' is 700002 bytes, output 'two' is 600002 bytes" in body["deploy_stderr"]
    assert "max_json_body_size" in body["deploy_stderr"]


# -- captures capped on disk ---------------------------------------------------------------

def test_capture_keeps_head_and_tail_and_says_exactly_what_was_dropped(tmp_path):
    total = 5_000_000
    script = (f"head -c {total} /dev/zero | tr '\\0' x; echo END;"
              "head -c 3000000 /dev/zero | tr '\\0' e >&2")
    result = process.run(["/bin/sh", "-c", script], stdout_path=tmp_path / "out",
                         stderr_path=tmp_path / "err")
    kept = capture.HEAD + capture.TAIL
    dropped = total + 4 - kept
    mark = capture.marker(dropped)
    assert (tmp_path / "out").stat().st_size == kept + len(mark)
    data = (tmp_path / "out").read_bytes()
    assert data[capture.HEAD:capture.HEAD + len(mark)] == mark
    assert data.endswith(b"xEND\n") and result.printed["stdout"] == total + 4
    assert f"dropped {dropped} bytes here" in result.stdout()
    assert (tmp_path / "err").stat().st_size == kept + len(capture.marker(3_000_000 - kept))


def test_background_grandchild_holding_the_output_does_not_delay_the_run(tmp_path):
    started = time.monotonic()
    result = process.run(["/bin/sh", "-c", "echo first; (sleep 30; echo late) & echo last"],
                         stdout_path=tmp_path / "out", stderr_path=tmp_path / "err",
                         timeout=60)
    assert time.monotonic() - started < 10
    assert result.stdout() == "first\nlast\n"


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs, mounted for this test only."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def leave_free(mount: Path, free: int) -> None:
    """Fill `mount` with a file until about `free` bytes are left."""
    vfs = os.statvfs(mount)
    size = vfs.f_bavail * vfs.f_frsize - free
    fd = os.open(mount / ".filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


def test_hook_printing_more_than_the_free_space_fails_and_the_next_runs(fakecloud, tmp_path,
                                                                        small_fs):
    state, runs = small_fs / "state", tmp_path / "runs"
    StateDir(state).ensure()
    leave_free(small_fs, 1024 * 1024)
    flood = deployment(fakecloud, "flood",
                       "#!/bin/sh\nhead -c 3000000 /dev/zero | tr '\\0' f\necho TAIL\n")
    after = deployment(fakecloud, "after", f"#!/bin/sh\necho after >> {runs}\necho done\n")
    fakecloud.set_metadata({"deployments": [flood, after]})

    proc = once(fakecloud, state)
    assert "Traceback" not in proc.stderr
    [body] = signals_for(fakecloud, "flood")
    assert body["deploy_status_code"] != 0
    assert "stdout not kept: cannot write" in body["deploy_stderr"]
    assert "disk full (after" in body["deploy_stderr"]
    assert body["deploy_stdout"].endswith("TAIL\n")  # the last KiB, from memory
    assert (state / "deployments" / flood["id"] / "stdout").stat().st_size == 0  # space given back
    assert runs.read_text() == "after\n"
    assert signals_for(fakecloud, "after")[0]["deploy_status_code"] == 0
    journal = json.loads((state / "deployments" / flood["id"] / "journal.json").read_text())
    assert journal["state"] == "signalled" and journal["status_code"] != 0


def test_full_disk_during_capture_is_reported_by_process_run(small_fs):
    leave_free(small_fs, 64 * 1024)
    result = process.run(["/bin/sh", "-c", "head -c 500000 /dev/zero; echo bye >&2"],
                         stdout_path=small_fs / "out", stderr_path=small_fs / "err")
    assert result.returncode == 0
    assert "disk full" in result.capture_errors["stdout"]
    assert os.path.getsize(small_fs / "out") == 0
    dropped = 500000 - 2 * capture.MEMORY  # the first and last 16 KiB stay, from memory
    assert result.stdout() == ("\0" * capture.MEMORY + f"\n[... guestagent dropped {dropped} "
                               f"bytes here; its file could not be kept, the first and last "
                               f"{capture.MEMORY} bytes were ...]\n" + "\0" * capture.MEMORY)
    assert result.stderr() == "bye\n"
    vfs = os.statvfs(small_fs)
    assert vfs.f_bavail * vfs.f_frsize >= 60 * 1024  # what the capture took, it gave back



def test_hook_filling_the_disk_is_still_signalled_failed(fakecloud, tmp_path, small_fs):
    state = small_fs / "state"
    StateDir(state).ensure()
    # The hook fills the state filesystem itself: its result cannot be recorded afterwards.
    hog = deployment(fakecloud, "hog", "#!/bin/sh\nhead -c 8000000 /dev/zero > \"$hog_path\"\n"
                     "echo filled\n", inputs=[{"name": "hog_path", "value": str(small_fs / "hog")}])
    fakecloud.set_metadata({"deployments": [hog]})
    proc = once(fakecloud, state)
    assert "Traceback" not in proc.stderr
    [body] = signals_for(fakecloud, "hog")
    assert body["deploy_status_code"] != 0 and "disk full" in body["deploy_stderr"]


def test_outputs_too_large_for_heat_fail_the_journal_too(fakecloud, tmp_path):
    script = ("#!/bin/sh\nhead -c 700000 /dev/zero | tr '\\0' a > \"$heat_outputs_path.one\"\n"
              "head -c 600000 /dev/zero | tr '\\0' b > \"$heat_outputs_path.two\"\n")
    dep = deployment(fakecloud, "twoout", script, outputs=["one", "two"])
    fakecloud.set_metadata({"deployments": [dep]})
    state = tmp_path / "state"
    proc = once(fakecloud, state)
    journal = json.loads((state / "deployments" / dep["id"] / "journal.json").read_text())
    assert journal["status_code"] != 0 and "output 'one'" in (journal["error"] or "")
    assert proc.returncode == 1


def test_state_dir_through_a_link_is_followed_only_when_the_link_is_trusted(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    ours = tmp_path / "ours"
    ours.symlink_to(real)
    assert StateDir(ours).ensure().root == real.resolve()
    planted = tmp_path / "planted"
    planted.symlink_to(real)
    os.lchown(planted, OTHER_UID, OTHER_UID)
    with pytest.raises(UntrustedPath, match=f"state directory {planted}: a symbolic link"):
        StateDir(planted).ensure()


def test_daemon_records_the_result_once_space_returns_without_a_second_signal(
        fakecloud, tmp_path, small_fs):
    """The daemon's view of a disk filled by a hook: the failure reaches Heat at once, from
    memory; while the disk stays full the deployment is neither run nor signalled again; once
    space returns the result is recorded and the journal says signalled."""
    from guestagent.errors import StateError
    from tests.support.agent import make_agent
    from tests.support.clock import SimulatedClock

    runs = tmp_path / "runs"
    hog = deployment(fakecloud, "hog", f"#!/bin/sh\necho run >> {runs}\n"
                     "head -c 8000000 /dev/zero > \"$hog_path\"\necho filled\n",
                     inputs=[{"name": "hog_path", "value": str(small_fs / "hog")}])
    fakecloud.set_metadata({"deployments": [hog]})
    clock = SimulatedClock()
    agent = make_agent(fakecloud, tmp_path, clock, cli={"state_dir": str(small_fs / "state")})
    for _ in range(3):  # full disk: each pass stops at the record it cannot write
        with pytest.raises(StateError, match="disk full"):
            agent.run_pass()
        clock.sleep(1)
    [body] = signals_for(fakecloud, "hog")
    assert body["deploy_status_code"] != 0 and "could not be recorded" in body["deploy_stderr"]
    (small_fs / "hog").unlink()  # space returns
    agent.run_pass()
    entry = json.loads((small_fs / "state" / "deployments" / hog["id"] / "journal.json")
                       .read_text())
    assert entry["state"] == "signalled" and entry["status_code"] != 0
    assert len(signals_for(fakecloud, "hog")) == 1
    assert runs.read_text() == "run\n"
