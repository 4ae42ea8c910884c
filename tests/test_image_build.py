"""A real diskimage-builder build of debian-minimal + guestagent, then a deployment inside it.

Slow (about 4 minutes). Set GUESTAGENT_IMAGE_TAR to a tree built earlier by
`scripts/build-image.sh` to skip the build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.metadata_netns import script_deployment_in_root

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (chroot, network namespaces)"
    for tool in ("disk-image-create", "debootstrap", "unshare", "sudo"):
        if not shutil.which(tool, path=f"{Path(sys.executable).parent}:{os.environ['PATH']}"):
            return f"{tool} not installed (scripts/setup-test-env.sh installs it)"
    return None


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    why = _missing()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("image")
    tar = os.environ.get("GUESTAGENT_IMAGE_TAR")
    if not tar:
        log = work / "build.log"
        with open(log, "wb") as out:
            done = subprocess.run(["bash", str(REPO / "scripts/build-image.sh"),
                                   str(work / "guestagent")], stdout=out, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, TMPDIR=str(work)), timeout=1800)
        assert done.returncode == 0, log.read_text(errors="replace")[-5000:]
        tar = work / "guestagent.tar"
    root = work / "root"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", str(tar)], check=True, timeout=600)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_image_has_agent_unit_hooks_and_phases(image_root):
    assert os.access(image_root / "opt/guestagent/bin/guestagent", os.X_OK)
    assert os.readlink(image_root / "usr/local/bin/guestagent") == "/opt/guestagent/bin/guestagent"
    wants = image_root / "etc/systemd/system/multi-user.target.wants/guestagent.service"
    assert os.readlink(wants) == "/etc/systemd/system/guestagent.service"
    assert os.readlink(image_root / "usr/libexec/heat-config/hooks/script") == \
        "/opt/guestagent/bin/guestagent-hook-script"
    assert (image_root / "usr/libexec/os-refresh-config/configure.d/20-os-apply-config").is_symlink()
    assert "InhibitDelayMaxSec=900" in \
        (image_root / "etc/systemd/logind.conf.d/guestagent.conf").read_text()


def test_agent_in_image_completes_a_script_deployment(image_root, tmp_path):
    done, signal = script_deployment_in_root(image_root, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert signal == {"deploy_status_code": 0, "deploy_stdout": "hello image\n",
                      "deploy_stderr": "", "result": "done"}
    assert (image_root / "root/deployed-by-guestagent").read_text() == "hello image\n"
