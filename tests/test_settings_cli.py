"""The real `guestagent` process: exit 2 for a configuration error (naming origin, setting and
what is allowed), 1 when a configured source could not be read or served an invalid
document, 0 when every deployment ran and was signalled; settings from metadata that only the
operator may give are ignored, not acted on (README: Settings, Exit codes)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.agent import (
    REPO,
    _env,
    agent_argv,
    deployment,
    run_agent,
    signals_for,
)

SECONDS_FLAGS = ("--polling-interval", "--conditional-polling-interval", "--splay",
                 "--hook-timeout")


def one_line(proc) -> str:
    text = proc.stderr.strip()
    assert text.count("\n") == 0, text
    return text


@pytest.mark.parametrize("flag", SECONDS_FLAGS)
@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "-1", "true"])
def test_bad_number_on_the_command_line_exits_2(tmp_path, flag, value):
    proc = run_agent(tmp_path / "s", flag, value, "--collectors", "local")
    assert proc.returncode == 2
    setting = flag[2:].replace("-", "_")
    low = "0" if flag == "--splay" else "0.1"
    line = one_line(proc)
    assert line.startswith(f"guestagent: command line {flag}: {setting}: {value!r} is ")
    assert line.endswith(f" (allowed: a number of seconds from {low} to 86400)")
    problem = {"inf": "not a finite number", "nan": "not a finite number", "true": "not a number"}
    assert problem.get(value, "out of range") in line
    assert not (tmp_path / "s").exists()  # refused before anything was created


@pytest.mark.parametrize("yaml_text, where", [
    ("cfn: {metadata_url: 'file:///etc/passwd'}\n", ("cfn.metadata_url: 'file:///etc/passwd' "
                                                     "has scheme 'file'")),
    ("ec2: {metadata_url: 'ftp://169.254.169.254/'}\n", "ec2.metadata_url: 'ftp://"),
    ("request: {metadata_url: 'http//oops'}\n", "request.metadata_url: 'http//oops' has scheme"),
    ("polling_interval: .inf\n", "polling_interval: inf is not a finite number"),
    ("max_attempts: true\n", "max_attempts: boolean True is not a number"),
    ("pollng_interval: 5\n", "pollng_interval: unknown setting (did you mean polling_interval?)"),
])
def test_bad_yaml_exits_2_naming_the_file(tmp_path, yaml_text, where):
    conf = tmp_path / "guestagent.yaml"
    conf.write_text(yaml_text)
    proc = run_agent(tmp_path / "s", "--collectors", "local", "--config", str(conf))
    assert proc.returncode == 2
    assert one_line(proc).startswith(f"guestagent: config file {conf}: {where}")


@pytest.mark.parametrize("argv, message", [
    (("--request-metadata-url", "ftp://h.example/m"),
     "--request-metadata-url: request.metadata_url: 'ftp://h.example/m' has scheme 'ftp'"),
    (("--request-metadata-url", "http://"), "names no host"),
    (("--collectors", "heat_locl"), "unknown source heat_locl (did you mean heat_local?)"),
    (("--log-level", "loud"), "--log-level: log_level: 'loud' is not a log level"),
])
def test_bad_values_on_the_command_line_exit_2(tmp_path, argv, message):
    proc = run_agent(tmp_path / "s", *argv)
    assert proc.returncode == 2 and message in one_line(proc)


@pytest.mark.parametrize("flag", ["--local-path", "--heat-local-path", "--hooks-dir"])
def test_a_missing_path_on_the_command_line_exits_2(tmp_path, flag):
    missing = tmp_path / "no-such-dir"
    proc = run_agent(tmp_path / "s", "--collectors", "local,heat_local", flag, str(missing))
    assert proc.returncode == 2
    assert f"command line {flag}: " in one_line(proc) and f"{missing} does not exist" in proc.stderr


def test_local_path_naming_a_file_exits_2(tmp_path):
    afile = tmp_path / "f"
    afile.write_text("{}")
    proc = run_agent(tmp_path / "s", "--collectors", "local", "--local-path", str(afile))
    assert proc.returncode == 2 and "is not a directory" in one_line(proc)


@pytest.mark.parametrize("command", [(), ("status",), ("doctor",)])
def test_state_dir_naming_a_file_exits_2_and_leaves_it_alone(tmp_path, command):
    victim = tmp_path / "precious"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    argv = agent_argv(victim, "--once", "--collectors", "local")
    if command:
        argv = argv[:3] + [command[0], "--config", "/dev/null", "--state-dir", str(victim)]
    proc = run_cli(argv)
    assert proc.returncode == 2
    assert f"{victim} exists and is not a directory" in one_line(proc)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644 and victim.read_text() == "keep me\n"


def run_cli(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=_env(None),
                          cwd=REPO, check=False)


# ---- --once: 1 when a source could not be read or served nothing valid ---------------------
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/metadata"  # nobody listens there any more


@pytest.mark.parametrize("case", ["closed port", "404", "html", "deployments not a list"])
def test_once_exits_1_when_the_source_gives_nothing_valid(fakecloud, tmp_path, case):
    url = fakecloud.metadata_url
    if case == "closed port":
        url = closed_port_url()
    elif case == "404":
        url = f"{fakecloud.url}/swift/v1/no-such-object"
    elif case == "html":
        fakecloud.set_metadata(b"<html>maintenance</html>")
    else:
        fakecloud.set_metadata({"deployments": "not a list"})
    proc = run_agent(tmp_path / "s", "--collectors", "request", "--request-metadata-url", url)
    assert proc.returncode == 1, proc.stderr
    assert "source failed: request" in proc.stderr


def test_once_exits_0_when_every_deployment_ran_and_was_signalled(fakecloud, tmp_path):
    fakecloud.set_metadata({"deployments": [deployment(fakecloud, "ok", "#!/bin/sh\necho hi\n")]})
    proc = run_agent(tmp_path / "s", "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url)
    assert proc.returncode == 0, proc.stderr
    assert signals_for(fakecloud, "ok")[0]["deploy_status_code"] == 0


# ---- metadata may not reach operator-only settings ----------------------------------------
def test_metadata_cannot_redirect_operator_only_settings(fakecloud, tmp_path):
    # Boot metadata that tries what issue 11 item 5 saw: os_config_dir (chmod + credentials
    # written there), hooks_dirs (a hook that would run as root), a local source path, the
    # attempts and timeout. None of it takes effect; one warning says what was ignored.
    target = tmp_path / "someone-elses-dir"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    evil_hooks = tmp_path / "evil-hooks"
    evil_hooks.mkdir()
    marker = tmp_path / "evil-hook-ran"
    hook = evil_hooks / "script"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
    hook.chmod(0o755)
    evil_local = tmp_path / "evil-local"
    evil_local.mkdir()
    (evil_local / "doc").write_text(json.dumps({"deployments": [
        deployment(fakecloud, "planted", f"#!/bin/sh\ntouch {tmp_path}/planted-ran\n")]}))
    boot = tmp_path / "cfn-init-data"
    boot.write_text(json.dumps({
        "os-collect-config": {"os_config_dir": str(target), "hooks_dirs": [str(evil_hooks)],
                              "collectors": ["local"], "local": {"path": [str(evil_local)]},
                              "max_attempts": 99, "hook_timeout": 1, "polling_interval": 40},
        "deployments": [deployment(fakecloud, "real", "#!/bin/sh\necho real\n")]}))
    local = tmp_path / "empty-local"
    local.mkdir()
    proc = run_agent(tmp_path / "s", "--collectors", "heat_local", "--heat-local-path",
                     str(boot), "--local-path", str(local))
    assert proc.returncode == 0, proc.stderr
    assert signals_for(fakecloud, "real")[0]["deploy_stdout"] == "real\n"
    assert not marker.exists() and not (tmp_path / "planted-ran").exists()
    assert os.listdir(target) == [] and stat.S_IMODE(target.stat().st_mode) == 0o755
    warnings = [line for line in proc.stderr.splitlines() if "ignored:" in line]
    assert len(warnings) == 1, proc.stderr
    for key in ("os_config_dir", "hooks_dirs", "local.path", "max_attempts", "hook_timeout"):
        assert key in warnings[0]


def test_the_shipped_example_configuration_loads():
    """examples/guestagent.yaml, as the README tells an operator to install it, is valid."""
    from guestagent import config

    example = Path(__file__).resolve().parents[1] / "examples" / "guestagent.yaml"
    settings = config.load(str(example), {}).settings()
    assert settings.polling_interval == 30 and settings.splay == 30
    assert settings.collectors[:3] == ["heat_local", "config_drive", "local"]
