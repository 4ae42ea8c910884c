"""`python -m guestagent.install` into a scratch root, and the diskimage elements resolving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guestagent import install, refresh

REPO = Path(__file__).resolve().parent.parent
ELEMENTS = ("guestagent", "guestagent-ansible", "guestagent-puppet", "guestagent-docker")


def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "venv/bin"
    bin_dir.mkdir(parents=True)
    for name in ("guestagent", "guestagent-hook-script", "guestagent-hook-puppet"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_install_into_root(tmp_path):
    root, bin_dir = tmp_path / "root", fake_bin(tmp_path)
    # An image that already has a heat-config puppet hook keeps it.
    own_hook = root / "usr/libexec/heat-config/hooks/puppet"
    own_hook.parent.mkdir(parents=True)
    own_hook.write_text("#!/bin/sh\necho mine\n")
    lines = install.install(root, bin_dir, inhibit_delay=600)
    assert os.readlink(root / "usr/local/bin/guestagent") == str(bin_dir / "guestagent")
    unit = root / "etc/systemd/system/guestagent.service"
    assert unit.read_text() == (REPO / "systemd/guestagent.service").read_text()
    assert unit.stat().st_mode & 0o777 == 0o644
    wants = root / "etc/systemd/system/multi-user.target.wants/guestagent.service"
    assert os.readlink(wants) == "/etc/systemd/system/guestagent.service"
    assert os.readlink(root / "usr/libexec/heat-config/hooks/script") == str(
        bin_dir / "guestagent-hook-script")
    assert own_hook.read_text() == "#!/bin/sh\necho mine\n"
    shipped = refresh.SHIPPED / "configure.d/20-os-apply-config"
    assert os.readlink(root / "usr/libexec/os-refresh-config/configure.d/20-os-apply-config") \
        == str(shipped)
    assert (root / "etc/systemd/logind.conf.d/guestagent.conf").read_text() == \
        "[Login]\nInhibitDelayMaxSec=600\n"
    assert "linked hook script" in lines and "linked hook puppet" not in lines
    # Running it again (an upgrade) is harmless and leaves the same tree.
    install.install(root, bin_dir, inhibit_delay=600)
    assert os.readlink(wants) == "/etc/systemd/system/guestagent.service"


def test_install_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "guestagent.install", "--root",
                           str(tmp_path / "root")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "installed and enabled guestagent.service" in done.stdout
    assert (tmp_path / "root/etc/systemd/system/guestagent.service").is_file()


def element_paths() -> str:
    dib = pytest.importorskip("diskimage_builder")
    return f"{REPO / 'diskimage-elements'}:{Path(dib.__file__).parent / 'elements'}"


@pytest.mark.parametrize("element", ELEMENTS)
def test_elements_resolve(element):
    env = dict(os.environ, ELEMENTS_PATH=element_paths())
    done = subprocess.run([sys.executable, "-m", "diskimage_builder.element_dependencies",
                           element, "debian-minimal"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    resolved = set(done.stdout.split())
    assert {"guestagent", element, "package-installs", "ensure-venv", "debian-minimal"} <= resolved


def test_element_hooks_are_executable_and_parse():
    for hook in (REPO / "diskimage-elements").glob("*/*.d/*"):
        if hook.parent.name == "environment.d":
            continue
        assert os.access(hook, os.X_OK), f"{hook} is not executable"
        done = subprocess.run(["bash", "-n", str(hook)], capture_output=True, text=True)
        assert done.returncode == 0, f"{hook}: {done.stderr}"
