"""systemd/guestagent.service: systemd-analyze verify accepts it, and it says what SPEC asks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "guestagent.service"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_is_clean(tmp_path):
    # verify checks that ExecStart exists: point it at this environment's entry point.
    entry = Path(sys.executable).parent / "guestagent"
    assert entry.exists(), "guestagent entry point not installed (pip install -e .)"
    unit = tmp_path / "guestagent.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/guestagent", str(entry)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Unknown keys and bad values are only warnings: there must be none.
    assert str(unit) not in done.stderr, done.stderr


def test_verify_would_catch_a_mistake(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    unit = tmp_path / "broken.service"
    unit.write_text(UNIT.read_text().replace("Type=notify", "Typo=notify"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert "Unknown key 'Typo'" in done.stderr


def test_unit_contract():
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["Restart"] == ["on-failure"]
    after = " ".join(d["After"]).split()
    assert "network-online.target" in after and "cloud-init.service" in after
    assert "network-online.target" in " ".join(d["Wants"]).split()
    assert d["StateDirectory"] == ["guestagent"]
    # Status lines on the serial console by default (guestagent.console).
    assert "GUESTAGENT_CONSOLE=/dev/console" in d["Environment"]
    assert d["WantedBy"] == ["multi-user.target"]
    # Hooks configure the whole machine: nothing may make / read-only or hide /tmp or /home.
    for forbidden in ("ProtectSystem", "ProtectHome", "PrivateTmp", "ReadOnlyPaths",
                      "NoNewPrivileges", "RestrictSUIDSGID", "PrivateDevices", "ProtectHostname"):
        assert forbidden not in d, f"{forbidden} would stop hooks from doing their job"
