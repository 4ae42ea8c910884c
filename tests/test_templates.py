"""os-apply-config compatible rendering and key queries (SPEC section 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guestagent import templates
from guestagent.templates import TemplateError


def make_tree(root: Path, files: dict[str, str], executable: tuple[str, ...] = ()) -> Path:
    tree = root / "templates"
    for rel, text in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if rel in executable else 0o644)
    return tree


METADATA = {"db": {"host": "10.0.0.5", "port": 5432, "opts": {"ssl": True}},
            "servers": ["a", "b"], "motd": "<b>& \"hi\"", "empty": ""}


def test_renders_tree_without_escaping_and_json_for_objects(tmp_path):
    tree = make_tree(tmp_path, {
        "etc/app/app.conf": "host={{db.host}}:{{db.port}}\nopts={{db.opts}}\n"
                            "servers={{servers}}\n{{#servers}}- {{.}}\n{{/servers}}"
                            "motd={{motd}}\nmissing=[{{no.such.key}}]\n",
    })
    out = tmp_path / "root"
    result = templates.apply(METADATA, tree, out)
    dest = out / "etc/app/app.conf"
    assert result.written == [dest]
    assert dest.read_text() == ('host=10.0.0.5:5432\nopts={"ssl": true}\nservers=["a", "b"]\n'
                                '- a\n- b\nmotd=<b>& "hi"\nmissing=[]\n')
    assert dest.stat().st_mode & 0o777 == 0o644


def test_unchanged_file_is_not_rewritten(tmp_path):
    tree = make_tree(tmp_path, {"etc/a": "{{db.host}}\n"})
    out = tmp_path / "root"
    templates.apply(METADATA, tree, out)
    dest = out / "etc/a"
    inode = dest.stat().st_ino
    os.utime(dest, (1, 1))
    result = templates.apply(METADATA, tree, out)
    assert result.unchanged == [dest] and result.written == []
    assert dest.stat().st_ino == inode and dest.stat().st_mtime == 1
    # A change is written atomically: a new inode replaces the old one.
    result = templates.apply({"db": {"host": "other"}}, tree, out)
    assert result.written == [dest]
    assert dest.read_text() == "other\n" and dest.stat().st_ino != inode


def test_control_file_mode_owner_group(tmp_path):
    tree = make_tree(tmp_path, {
        "etc/secret": "pw={{db.port}}",
        "etc/secret.oac": "mode: 0640\nowner: nobody\ngroup: 0\n",
        "etc/str-mode": "x",
        "etc/str-mode.oac": "mode: '0600'\n",
    })
    out = tmp_path / "root"
    templates.apply(METADATA, tree, out)
    st = (out / "etc/secret").stat()
    assert st.st_mode & 0o777 == 0o640
    assert st.st_uid == 65534 and st.st_gid == 0
    assert (out / "etc/str-mode").stat().st_mode & 0o777 == 0o600
    # The .oac file itself is never an output.
    assert not (out / "etc/secret.oac").exists()


def test_allow_empty_false_removes_the_file(tmp_path):
    tree = make_tree(tmp_path, {"etc/maybe": "{{empty}}", "etc/maybe.oac": "allow_empty: false\n",
                                "etc/kept": "{{empty}}"})
    out = tmp_path / "root"
    (out / "etc").mkdir(parents=True)
    (out / "etc/maybe").write_text("old")
    result = templates.apply(METADATA, tree, out)
    assert not (out / "etc/maybe").exists()
    assert result.removed == [out / "etc/maybe"]
    assert (out / "etc/kept").read_text() == ""


def test_executable_template_gets_metadata_on_stdin(tmp_path):
    tree = make_tree(tmp_path, {
        "etc/generated": "#!/bin/sh\nexec python3 -c 'import json,sys; d=json.load(sys.stdin); "
                         "print(\"port\", d[\"db\"][\"port\"])'\n",
    }, executable=("etc/generated",))
    out = tmp_path / "root"
    templates.apply(METADATA, tree, out)
    assert (out / "etc/generated").read_text() == "port 5432\n"


def test_one_failure_writes_nothing(tmp_path):
    tree = make_tree(tmp_path, {
        "etc/a-good": "{{db.host}}",
        "etc/b-bad-mustache": "{{#servers}}x{{/db}}",
        "etc/c-bad-exec": "#!/bin/sh\necho boom >&2\nexit 3\n",
        "etc/d-bad-oac": "x", "etc/d-bad-oac.oac": "colour: red\n",
    }, executable=("etc/c-bad-exec",))
    out = tmp_path / "root"
    (out / "etc").mkdir(parents=True)
    (out / "etc/a-good").write_text("before")
    with pytest.raises(TemplateError) as err:
        templates.apply(METADATA, tree, out)
    message = str(err.value)
    assert "nothing written" in message
    assert "b-bad-mustache" in message and "c-bad-exec" in message and "exited 3" in message
    assert "boom" in message and "d-bad-oac.oac" in message and "colour" in message
    assert (out / "etc/a-good").read_text() == "before"
    assert sorted(p.name for p in (out / "etc").iterdir()) == ["a-good"]


def test_bad_control_values_are_named(tmp_path):
    for body, fragment in (("mode: 99999\n", "mode"), ("owner: no-such-user-xyz\n", "owner"),
                           ("allow_empty: maybe\n", "allow_empty"), ("- a\n", "mapping")):
        path = tmp_path / "x.oac"
        path.write_text(body)
        with pytest.raises(TemplateError, match=fragment):
            templates.read_control(path)


def test_templates_dir_from_environment(tmp_path, monkeypatch):
    tree = make_tree(tmp_path, {"f": "{{db.host}}"})
    monkeypatch.setenv("OS_CONFIG_APPLIER_TEMPLATES", str(tree))
    templates.apply(METADATA, None, tmp_path / "out")
    assert (tmp_path / "out/f").read_text() == "10.0.0.5"


def test_metadata_merge_and_data_deployments(tmp_path):
    general = tmp_path / "ec2.json"
    specific = tmp_path / "heat.json"
    general.write_text(json.dumps({"a": {"x": 1, "y": 2}, "keep": True}))
    specific.write_text(json.dumps({"a": {"y": 3}, "deployments": [
        {"id": "1", "group": "os-apply-config", "config": {"a": {"z": 4}}},
        {"id": "2", "group": "script", "config": "echo not data"},
    ]}))
    merged = templates.load_metadata([general, tmp_path / "absent.json", specific])
    assert merged["a"] == {"x": 1, "y": 3, "z": 4}
    assert merged["keep"] is True
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(TemplateError, match="bad.json"):
        templates.load_metadata([tmp_path / "bad.json"])


def test_config_files_from_env_and_index(tmp_path):
    assert templates.config_files_from_env({"OS_CONFIG_FILES": "/a.json:/b.json"}) == [
        Path("/a.json"), Path("/b.json")]
    index = tmp_path / "os_config_files.json"
    index.write_text(json.dumps(["/c.json"]))
    assert templates.config_files_from_env({}, index) == [Path("/c.json")]
    assert templates.config_files_from_env({}, tmp_path / "none") == []


@pytest.mark.parametrize("key,type_name,default,expected", [
    ("db.host", "netaddress", None, "10.0.0.5"),
    ("db.port", "int", None, "5432"),
    ("servers.1", "default", None, "b"),
    ("db.opts", "raw", None, '{"ssl": true}'),
    ("no.such", "default", "fallback", "fallback"),
    ("motd", "raw", None, "<b>& \"hi\""),
])
def test_query(key, type_name, default, expected):
    assert templates.query(METADATA, key, type_name, default) == expected


@pytest.mark.parametrize("key,type_name,fragment", [
    ("no.such", "default", "does not exist"),
    ("db.host", "int", "does not look like type int"),
    ("db.opts", "default", "--type raw"),
    ("servers.9", "default", "does not exist"),
    ("db.host", "colour", "unknown type"),
])
def test_query_errors(key, type_name, fragment):
    with pytest.raises(TemplateError, match=fragment):
        templates.query(METADATA, key, type_name)


def run_cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guestagent.templates", *args],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=60)


def test_command_line_query_and_render(tmp_path):
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps(METADATA))
    env = {"OS_CONFIG_FILES": str(meta)}
    done = run_cli(["--key", "db.port", "--type", "int"], env)
    assert (done.returncode, done.stdout) == (0, "5432\n")
    done = run_cli(["--key", "nope", "--key-default", "d"], env)
    assert (done.returncode, done.stdout) == (0, "d\n")
    done = run_cli(["--key", "nope"], env)
    assert done.returncode == 1 and "nope does not exist" in done.stderr
    tree = make_tree(tmp_path, {"etc/x": "{{db.host}}"})
    done = run_cli(["-t", str(tree), "-o", str(tmp_path / "out")], env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out/etc/x").read_text() == "10.0.0.5"
