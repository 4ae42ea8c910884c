"""The old tools' commands under their names (os-collect-config, os-apply-config,
os-refresh-config, heat-config-notify), run as real processes through the wrappers that
`guestagent.install` places, against each tool's documented behaviour and exit codes."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guestagent import install
from guestagent.compat import OLD_NAMES, wrappers
from tests.support.agent import deployment, signals_for

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def old(tmp_path):
    """Run an old-name command placed by the installer into a scratch root."""
    root = tmp_path / "root"
    install.install(root, Path(sys.executable).parent)
    bin_dir = root / "usr/local/bin"

    def run(name: str, *args, stdin: str | None = None, env: dict | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_dir / name), *map(str, args)], input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    return run


# -- placing the wrappers ---------------------------------------------------------------

def test_wrappers_only_where_the_old_tool_is_missing(tmp_path):
    root = tmp_path / "root"
    real_apply = root / "usr/bin/os-apply-config"
    real_apply.parent.mkdir(parents=True)
    real_apply.write_text("#!/bin/sh\necho the real one\n")
    mine = root / "usr/local/bin/os-refresh-config"  # a real one where wrappers go
    mine.parent.mkdir(parents=True)
    mine.write_text("#!/bin/sh\necho also real\n")
    lines = install.install(root, Path(sys.executable).parent)
    assert real_apply.read_text() == "#!/bin/sh\necho the real one\n"
    assert mine.read_text() == "#!/bin/sh\necho also real\n"
    assert not (root / "usr/local/bin/os-apply-config").exists()
    assert "left os-apply-config alone: the real one is at /usr/bin/os-apply-config" in lines
    for name in ("os-collect-config", "heat-config-notify"):
        assert wrappers.is_wrapper(root / "usr/local/bin" / name)
        assert os.access(root / "usr/local/bin" / name, os.X_OK)
    # A real os-collect-config installed later: the wrapper goes, it must not shadow it.
    (root / "usr/bin/os-collect-config").write_text("#!/bin/sh\n")
    lines = install.install(root, Path(sys.executable).parent)
    assert not (root / "usr/local/bin/os-collect-config").exists()
    assert any(line.startswith("removed the os-collect-config wrapper") for line in lines)
    assert wrappers.is_wrapper(root / "usr/local/bin/heat-config-notify")
    assert install.install(root, Path(sys.executable).parent, old_names=False)
    assert not any("wrapper" in line for line in install.install(
        tmp_path / "other", Path(sys.executable).parent, old_names=False))


@pytest.mark.parametrize("name", sorted(OLD_NAMES))
def test_help_says_it_is_guestagent(old, name):
    done = old(name, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {name} ")
    sub = OLD_NAMES[name][0]
    assert f"provided by guestagent (guestagent {sub})" in " ".join(done.stdout.split())


# -- os-apply-config ------------------------------------------------------------------------

METADATA = {"db": {"port": 5432, "host": "10.0.0.5", "ssl": True, "tls": False,
                   "name": "not a word"}, "list": [{"x": "first"}], "nothing": None}


@pytest.fixture
def meta(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(METADATA))
    return path


@pytest.mark.parametrize("args, code, out", [
    (["--key", "db.port", "--type", "int"], 0, "5432\n"),
    (["--key", "db.host", "--type", "netaddress"], 0, "10.0.0.5\n"),
    (["--key", "list.0.x"], 0, "first\n"),
    (["--key", "db.ssl"], 0, "true\n"),
    (["--key", "db", "--type", "raw"], 0, json.dumps(METADATA["db"]) + "\n"),
    (["--key", "db.name"], 1, ""),                                    # not of type default
    (["--key", "db.host", "--type", "int"], 1, ""),
    (["--key", "db.missing"], 1, ""),                                 # missing, no default
    (["--key", "nothing"], 1, ""),                                    # null counts as missing
    (["--key", "db.missing", "--key-default", "x y!"], 0, "x y!\n"),  # default: not checked
    (["--key", "db.port", "--type", "nosuchtype"], 1, ""),
    (["--boolean-key", "db.ssl"], 0, ""),
    (["--boolean-key", "db.tls"], 1, ""),
    (["--boolean-key", "db.port"], 255, ""),
    (["--boolean-key", "db.missing"], 255, ""),
])
def test_apply_config_key_queries_and_exit_codes(old, meta, args, code, out):
    done = old("os-apply-config", "-m", meta, *args)
    assert (done.returncode, done.stdout) == (code, out), done.stderr
    if code == 1 and args[0] == "--key":
        assert done.stderr.startswith("os-apply-config: ") and str(meta) in done.stderr


def _tree(tmp_path, files: dict) -> Path:
    root = tmp_path / "templates"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_apply_config_render_options(old, tmp_path, meta):
    tree = _tree(tmp_path, {"etc/app.conf": "{{db.host}}:{{db.port}} {{extra}}\n",
                            "etc/sub.conf": "{{host}}\n"})
    out = tmp_path / "out"
    done = old("os-apply-config", "--print-templates", "-t", tree)
    assert (done.returncode, done.stdout) == (0, f"{tree}\n")
    done = old("os-apply-config", "--print-templates", env={"OS_CONFIG_APPLIER_TEMPLATES": "/x"})
    assert done.stdout == "/x\n"
    done = old("os-apply-config", "-t", tree, "-o", out, "-m", meta, "--validate")
    assert done.returncode == 0 and not out.exists()
    # -m takes several files (most general first) and --fallback-metadata goes before them.
    fallback = tmp_path / "boot.json"
    fallback.write_text(json.dumps({"extra": "from-boot", "db": {"host": "overridden"}}))
    later = tmp_path / "later.json"
    later.write_text(json.dumps({"db": {"port": 1}}))
    done = old("os-apply-config", "-t", tree, "-o", out, "-m", meta, later,
               "--fallback-metadata", fallback, tmp_path / "absent.json")
    assert done.returncode == 0, done.stderr
    assert (out / "etc/app.conf").read_text() == "10.0.0.5:1 from-boot\n"
    # --subhash renders against one object of the metadata.
    done = old("os-apply-config", "-t", tree, "-o", out, "-m", meta, "-s", "db")
    assert (out / "etc/sub.conf").read_text() == "10.0.0.5\n"
    assert old("os-apply-config", "-t", tree, "-o", out, "-m", meta, "-s", "list").returncode == 1


def test_apply_config_where_the_metadata_comes_from(old, tmp_path, meta):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"db": {"port": 7}}))
    index = tmp_path / "index.json"
    index.write_text(json.dumps([str(other)]))
    q = ("--key", "db.port", "--fallback-metadata")
    assert old("os-apply-config", *q, env={"OS_CONFIG_FILES": f"{other}:{meta}"}).stdout \
        == "5432\n"
    assert old("os-apply-config", *q, "--os-config-files", index).stdout == "7\n"
    # OS_CONFIG_FILES wins over --os-config-files, as in os-apply-config.
    assert old("os-apply-config", *q, "--os-config-files", index,
               env={"OS_CONFIG_FILES": str(meta)}).stdout == "5432\n"
    # A script the agent runs: the agent's own index (GUESTAGENT_OS_CONFIG_DIR).
    agent_dir = tmp_path / "agent-occ"
    agent_dir.mkdir()
    (agent_dir / "os_config_files.json").write_text(json.dumps([str(meta)]))
    done = old("os-apply-config", *q, env={"GUESTAGENT_OS_CONFIG_DIR": str(agent_dir)})
    assert (done.returncode, done.stdout) == (0, "5432\n")


def test_apply_config_failing_template_writes_nothing(old, tmp_path, meta):
    tree = _tree(tmp_path, {"etc/a": "{{db.host}}\n", "etc/b": "#!/bin/sh\nexit 4\n"})
    (tree / "etc/b").chmod(0o755)  # an executable template that fails
    done = old("os-apply-config", "-t", tree, "-o", tmp_path / "out", "-m", meta)
    assert done.returncode == 1 and "etc/b" in done.stderr
    assert not (tmp_path / "out").exists()


# -- os-refresh-config ---------------------------------------------------------------------

def _phase_script(base: Path, phase: str, name: str, body: str) -> None:
    path = base / phase / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_refresh_config_runs_phases_in_order(old, tmp_path):
    base, trace = tmp_path / "orc", tmp_path / "trace"
    for phase in ("pre-configure.d", "configure.d", "post-configure.d", "migration.d"):
        _phase_script(base, phase, "10-a", f'echo "{phase} $OS_CONFIG_FILES" >> {trace}')
    _phase_script(base, "configure.d", "5-first", f"echo configure.d/5 >> {trace}; echo out")
    _phase_script(base, "configure.d", "55-heat-config", f"echo old-runner >> {trace}")
    _phase_script(base, "error.d", "10-e", f"echo error >> {trace}")
    env = {"OS_REFRESH_CONFIG_BASE_DIR": str(base), "OS_CONFIG_FILES": "/a.json:/b.json"}
    lock = tmp_path / "lock"
    done = old("os-refresh-config", "--lockfile", lock, env=env)
    assert done.returncode == 0, done.stderr
    assert trace.read_text().splitlines() == [
        "pre-configure.d /a.json:/b.json", "configure.d/5", "configure.d /a.json:/b.json",
        "post-configure.d /a.json:/b.json", "migration.d /a.json:/b.json"]
    assert "out\n" in done.stdout and "55-heat-config skipped" in done.stderr
    assert old("os-refresh-config", "--print-base", env=env).stdout == f"{base}\n"
    assert old("os-refresh-config", "--print-phases").stdout == \
        "pre-configure\tconfigure\tpost-configure\tmigration\n"


def test_refresh_config_failure_runs_error_d_and_exits_1(old, tmp_path):
    base, trace = tmp_path / "orc", tmp_path / "trace"
    _phase_script(base, "configure.d", "10-bad", f"echo bad >> {trace}; echo broken >&2; exit 3")
    _phase_script(base, "configure.d", "20-after", f"echo after >> {trace}")
    _phase_script(base, "post-configure.d", "10-post", f"echo post >> {trace}")
    _phase_script(base, "error.d", "10-e", f"echo error >> {trace}")
    done = old("os-refresh-config", "--lockfile", tmp_path / "lock",
               env={"OS_REFRESH_CONFIG_BASE_DIR": str(base)})
    assert done.returncode == 1
    assert trace.read_text().splitlines() == ["bad", "error"]
    assert "broken" in done.stderr and "configure.d/10-bad exited 3" in done.stderr


def test_refresh_config_one_at_a_time(old, tmp_path):
    lock = tmp_path / "lock"
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = old("os-refresh-config", "--lockfile", lock,
                   env={"OS_REFRESH_CONFIG_BASE_DIR": str(tmp_path)})
    assert done.returncode == errno.EAGAIN and "could not lock" in done.stderr


def test_refresh_config_uses_the_agents_files(old, tmp_path):
    base, trace = tmp_path / "orc", tmp_path / "trace"
    _phase_script(base, "configure.d", "10-a", f'echo "$OS_CONFIG_FILES" > {trace}')
    state = tmp_path / "state"
    (state / "os-collect-config").mkdir(parents=True)
    (state / "os-collect-config/os_config_files.json").write_text('["/s/local.json"]')
    env = {"OS_REFRESH_CONFIG_BASE_DIR": str(base), "OS_CONFIG_FILES": ""}
    done = old("os-refresh-config", "--lockfile", tmp_path / "lock", "--state-dir", state,
               env=env)
    assert done.returncode == 0, done.stderr
    assert trace.read_text() == "/s/local.json\n"


# -- os-collect-config -----------------------------------------------------------------------

def _local_source(tmp_path, document: dict, name: str = "local") -> Path:
    directory = tmp_path / name
    directory.mkdir(mode=0o700)
    (directory / "meta.json").write_text(json.dumps(document))
    (directory / "meta.json").chmod(0o600)
    return directory


def _config(tmp_path, **sections) -> Path:
    import yaml
    path = tmp_path / "guestagent.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def test_collect_print_is_the_merged_metadata(old, tmp_path):
    data = {"id": "d1", "name": "settings", "group": "os-apply-config", "config": {"k": 1}}
    local = _local_source(tmp_path, {"a": "local", "deployments": [data]})
    boot = tmp_path / "cfn-init-data"
    boot.write_text(json.dumps({"a": "boot", "b": "boot", "deployments": []}))
    conf = _config(tmp_path, local={"path": [str(local)]}, heat_local={"path": [str(boot)]})
    state = tmp_path / "state"
    args = ("--config", conf, "--state-dir", state, "--print")
    done = old("os-collect-config", *args, "heat_local", "local")
    assert done.returncode == 0, done.stderr
    # Later sources win per key; deployments are united, as the agent merges them.
    assert json.loads(done.stdout) == {"a": "local", "b": "boot", "deployments": [data]}
    assert not state.exists()  # --print only looks
    done = old("os-collect-config", *args, "--by-source", "heat_local", "local")
    assert json.loads(done.stdout) == {"heat_local": json.loads(boot.read_text()),
                                       "local": json.loads((local / "meta.json").read_text()),
                                       "settings": {"k": 1}}
    # The collectors named are the ones polled.
    done = old("os-collect-config", *args, "heat_local")
    assert json.loads(done.stdout)["a"] == "boot"
    done = old("os-collect-config", *args, "nosuchsource")
    assert done.returncode == 2 and "nosuchsource" in done.stderr
    done = old("os-collect-config", "--config", conf, "--state-dir", state, "--print-cachedir")
    assert (done.returncode, done.stdout) == (0, f"{state / 'os-collect-config'}\n")


def test_collect_one_time_force_and_splay(old, tmp_path):
    out = tmp_path / "ran"
    script = {"id": "s1", "name": "s", "group": "script", "options": {},
              "config": f"#!/bin/sh\necho run >> {out}\n",
              "inputs": [{"name": "deploy_signal_transport", "value": "NO_SIGNAL"}]}
    local = _local_source(tmp_path, {"deployments": [script]})
    base, trace = tmp_path / "orc", tmp_path / "refreshes"
    _phase_script(base, "configure.d", "10-count", f"echo refresh >> {trace}")
    conf = _config(tmp_path, local={"path": [str(local)]},
                   deployed_dir=str(tmp_path / "markers"))
    env = {"OS_REFRESH_CONFIG_BASE_DIR": str(base)}
    args = ("--config", conf, "--state-dir", tmp_path / "state", "local")
    # --splay is ignored with --one-time: an hour's splay must not delay it.
    done = old("os-collect-config", "--one-time", "--splay", 3600, "-i", 5, *args, env=env,
               timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "run\n" and trace.read_text() == "refresh\n"
    # Nothing changed: nothing runs again.
    assert old("os-collect-config", "--one-time", *args, env=env).returncode == 0
    assert trace.read_text() == "refresh\n"
    # --force: the refresh phases run although nothing changed (and it implies --one-time);
    # a deployment already done is not run again.
    done = old("os-collect-config", "--force", *args, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert trace.read_text() == "refresh\nrefresh\n" and out.read_text() == "run\n"
    assert old("os-collect-config", "--polling-interval", "soon", *args).returncode == 2


# -- heat-config-notify ----------------------------------------------------------------------

def _dep_file(tmp_path, dep: dict) -> Path:
    path = tmp_path / f"{dep['name']}.json"
    path.write_text(json.dumps(dep))
    return path


def test_notify_sends_the_response_as_given(old, fakecloud, tmp_path):
    dep = deployment(fakecloud, "web", "echo hi")
    response = '{"deploy_stdout": "hi\\n", "deploy_stderr": "", "deploy_status_code": "0", ' \
               '"result": [1, 2]}'
    done = old("heat-config-notify", _dep_file(tmp_path, dep), stdin=response)
    assert done.returncode == 0, done.stderr
    [body] = signals_for(fakecloud, "web")
    assert list(body.items()) == list(json.loads(response).items())
    # Not JSON on stdin: an empty response is signalled, as heat-config-notify did.
    put = deployment(fakecloud, "put", "x", transport="TEMP_URL_SIGNAL")
    done = old("heat-config-notify", _dep_file(tmp_path, put), stdin="garbage")
    assert done.returncode == 0 and "no valid JSON on stdin" in done.stderr
    assert signals_for(fakecloud, "put") == [{}]


def test_notify_exit_codes(old, fakecloud, tmp_path):
    assert old("heat-config-notify", stdin="{}").returncode == 1  # usage
    done = old("heat-config-notify", tmp_path / "absent.json", stdin="{}")
    assert done.returncode == 1 and "absent.json" in done.stderr
    quiet = deployment(fakecloud, "quiet", "x", transport="NO_SIGNAL")
    assert old("heat-config-notify", _dep_file(tmp_path, quiet), stdin="{}").returncode == 0
    refused = deployment(fakecloud, "refused", "x")
    fakecloud.fail("/cfn/", status=403)
    done = old("heat-config-notify", _dep_file(tmp_path, refused), stdin="{}")
    assert done.returncode == 1 and "HTTP 403" in done.stderr


def test_notify_records_in_the_agents_outbox(old, fakecloud, tmp_path):
    from tests.support.agent import run_agent

    dep = deployment(fakecloud, "later", "x")
    state = tmp_path / "state"
    fakecloud.fail("/cfn/", status=503)  # Heat unavailable for now
    done = old("heat-config-notify", "--state-dir", state, _dep_file(tmp_path, dep),
               stdin='{"deploy_status_code": 0, "deploy_stdout": "done"}')
    assert done.returncode == 0 and "the agent retries it" in done.stderr
    entry = json.loads((state / "deployments" / dep["id"] / "journal.json").read_text())
    assert (entry["state"], entry["signal_final"]) == ("finished", False)
    assert signals_for(fakecloud, "later") == []
    fakecloud.recover()
    # The agent's next pass delivers it from the outbox.
    (tmp_path / "none").mkdir()
    proc = run_agent(state, "--collectors", "local", "--local-path", str(tmp_path / "none"))
    assert proc.returncode == 0, proc.stderr
    assert signals_for(fakecloud, "later") == [{"deploy_status_code": 0, "deploy_stdout": "done"}]
    entry = json.loads((state / "deployments" / dep["id"] / "journal.json").read_text())
    # Signalled, then forgotten: no metadata lists it (the agent drops what Heat removed).
    assert entry["signalled_at"] and entry["state"] == "gone"
    # Delivered at once: recorded as signalled, secrets dropped from the stored deployment.
    now = deployment(fakecloud, "now", "x")
    done = old("heat-config-notify", "--state-dir", state, _dep_file(tmp_path, now), stdin="{}")
    assert done.returncode == 0, done.stderr
    entry = json.loads((state / "deployments" / now["id"] / "journal.json").read_text())
    assert entry["state"] == "signalled"
    stored = (state / "deployments" / now["id"] / "deployment.json").read_text()
    assert "deploy_signal_id" not in stored


def test_collect_print_keeps_a_failing_sources_last_good_copy(old, fakecloud, tmp_path):
    fakecloud.set_metadata({"from": "heat"})
    state = tmp_path / "state"
    conf = _config(tmp_path, request={"metadata_url": fakecloud.metadata_url},
                   deployed_dir=str(tmp_path / "markers"))
    done = old("os-collect-config", "--config", conf, "--state-dir", state, "--one-time",
               "request")
    assert done.returncode == 0, done.stderr
    fakecloud.fail("/", status=503)
    done = old("os-collect-config", "--config", conf, "--state-dir", state, "--print",
               "request")
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"from": "heat"}
    assert "last good copy" in done.stderr
    # No state to fall back on: the source simply adds nothing.
    done = old("os-collect-config", "--config", conf, "--state-dir", tmp_path / "new",
               "--print", "request")
    assert (done.returncode, json.loads(done.stdout)) == (0, {})


def test_subcommands_under_the_guestagent_name(tmp_path, meta):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "guestagent", *map(str, args)],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run("apply-config", "-m", meta, "--key", "db.port").stdout == "5432\n"
    assert run("apply-config", "-m", meta, "--boolean-key", "db.port").returncode == 255
    for sub, old_name in (("collect", "os-collect-config"), ("refresh-config",
                                                             "os-refresh-config"),
                          ("notify", "heat-config-notify")):
        done = run(sub, "--help")
        assert done.returncode == 0 and done.stdout.startswith(f"usage: guestagent {sub}")
        assert f"the{old_name}command" in "".join(done.stdout.split())  # wrapped at hyphens
    assert run("notify").returncode == 1
