"""os-refresh-config compatible phases (SPEC section 5), run with real bash scripts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from guestagent import refresh


def script(base: Path, phase: str, name: str, body: str, mode: int = 0o755) -> Path:
    path = base / phase / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/bash\nset -eu\n" + body + "\n")
    path.chmod(mode)
    return path


def log_line(trace: Path, text: str) -> str:
    return f'echo "{text}" >> {trace}'


def test_phase_order_numeric_then_name_and_skips(tmp_path):
    base, trace = tmp_path / "orc", tmp_path / "trace"
    for phase in ("migration.d", "post-configure.d", "configure.d", "pre-configure.d"):
        script(base, phase, "50-x", log_line(trace, f"{phase} 50-x"))
    script(base, "configure.d", "5-early", log_line(trace, "configure.d 5-early"))
    script(base, "configure.d", "100-late", log_line(trace, "configure.d 100-late"))
    script(base, "configure.d", "zz-named", log_line(trace, "configure.d zz-named"))
    script(base, "configure.d", "60-not-exec", log_line(trace, "BAD"), mode=0o644)
    script(base, "configure.d", "70-bad.name", log_line(trace, "BAD"))
    result = refresh.run_refresh([], base)
    assert result.ok and result.failed is None
    assert trace.read_text().splitlines() == [
        "pre-configure.d 50-x", "configure.d 5-early", "configure.d 50-x",
        "configure.d 100-late", "configure.d zz-named", "post-configure.d 50-x",
        "migration.d 50-x"]
    assert len(result.steps) == 7


def test_environment_d_and_os_config_files(tmp_path):
    base, trace = tmp_path / "orc", tmp_path / "trace"
    (base / "environment.d").mkdir(parents=True)
    (base / "environment.d/10-first").write_text("export GREETING=hello\nexport WHO=one\n")
    (base / "environment.d/20-second").write_text("export WHO=two\n")
    script(base, "configure.d", "10-a", f'echo "$GREETING $WHO $OS_CONFIG_FILES" > {trace}')
    files = [tmp_path / "ec2.json", tmp_path / "heat.json"]
    result = refresh.run_refresh(files, base)
    assert result.ok
    assert trace.read_text() == f"hello two {files[0]}:{files[1]}\n"


def test_failure_stops_and_runs_error_d(tmp_path):
    base, trace = tmp_path / "orc", tmp_path / "trace"
    script(base, "pre-configure.d", "10-ok", log_line(trace, "pre ok"))
    script(base, "configure.d", "10-fails", log_line(trace, "fails") + "\necho broken >&2\nexit 7")
    script(base, "configure.d", "20-never", log_line(trace, "NEVER"))
    script(base, "post-configure.d", "10-never", log_line(trace, "NEVER"))
    script(base, "error.d", "10-report", log_line(trace, "error.d saw $OS_CONFIG_FILES"))
    script(base, "error.d", "20-also-fails", "exit 1")
    result = refresh.run_refresh([Path("/m.json")], base, log_dir=tmp_path / "logs")
    assert not result.ok
    assert (result.failed.phase, result.failed.script.name) == ("configure.d", "10-fails")
    assert result.failed.status_code == 7 and "broken" in result.failed.stderr_tail
    assert [s.status_code for s in result.error_steps] == [0, 1]
    assert trace.read_text().splitlines() == ["pre ok", "fails", "error.d saw /m.json"]
    assert "configure.d/10-fails exited 7" in result.summary()
    log = tmp_path / "logs/configure.d-10-fails.stderr"
    assert log.read_text() == "broken\n" and log.stat().st_mode & 0o777 == 0o600


def test_failing_environment_file_fails_the_script(tmp_path):
    base = tmp_path / "orc"
    (base / "environment.d").mkdir(parents=True)
    (base / "environment.d/bad").write_text("return 3\n")
    script(base, "configure.d", "10-a", "true")
    result = refresh.run_refresh([], base)
    assert not result.ok and result.failed.script.name == "10-a"


def test_base_dir_from_environment_and_missing_base(tmp_path, monkeypatch):
    base, trace = tmp_path / "orc", tmp_path / "trace"
    script(base, "configure.d", "1", f'echo "$OS_REFRESH_CONFIG_BASE_DIR" > {trace}')
    monkeypatch.setenv("OS_REFRESH_CONFIG_BASE_DIR", str(base))
    assert refresh.run_refresh([]).ok
    assert trace.read_text() == f"{base}\n"
    empty = refresh.run_refresh([], tmp_path / "absent")
    assert empty.ok and empty.steps == []


def test_timeout_kills_the_script_and_fails(tmp_path):
    base = tmp_path / "orc"
    script(base, "configure.d", "10-hangs", "sleep 30")
    result = refresh.run_refresh([], base, timeout=0.5)
    assert result.failed.timed_out and result.failed.duration < 10
    assert "timed out" in result.summary()


def test_write_config_files(tmp_path):
    docs = {"ec2": {"a": 1}, "heat/../x": {"b": 2}}
    paths = refresh.write_config_files(tmp_path / "occ", docs)
    assert [json.loads(p.read_text()) for p in paths] == [{"a": 1}, {"b": 2}]
    assert all(p.parent == tmp_path / "occ" for p in paths)
    index = json.loads((tmp_path / "occ" / refresh.INDEX_NAME).read_text())
    assert index == [str(p) for p in paths]
    assert (tmp_path / "occ").stat().st_mode & 0o777 == 0o700


def test_shipped_configure_script_renders_templates(tmp_path, monkeypatch):
    base = tmp_path / "orc"
    shutil.copytree(refresh.SHIPPED, base)
    tree = tmp_path / "templates/etc"
    tree.mkdir(parents=True)
    (tree / "motd").write_text("welcome to {{site.name}}\n")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"site": {"name": "lab"}}))
    out = tmp_path / "out"
    monkeypatch.setenv("OS_CONFIG_APPLIER_TEMPLATES", str(tmp_path / "templates"))
    # The shipped script writes under / by default; point it at a scratch root.
    (base / "environment.d").mkdir()
    (base / "environment.d/10-root").write_text(f"export GUESTAGENT_TEST_ROOT={out}\n")
    wrapper = base / "configure.d/20-os-apply-config"
    assert os.access(wrapper, os.X_OK)
    wrapper.write_text(wrapper.read_text().replace(
        "-m guestagent.templates", '-m guestagent.templates -o "$GUESTAGENT_TEST_ROOT"'))
    result = refresh.run_refresh([meta], base)
    assert result.ok, result.summary()
    assert (out / "etc/motd").read_text() == "welcome to lab\n"
