"""The Containerfile builds on the local engine from a locally imported base, and the agent in
the container runs a deployment. Slow: debootstrap of the base (cached), image build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import debootstrap

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_container_image_runs_a_deployment(dockerd, tmp_path):
    why = debootstrap.missing()
    if why:
        pytest.skip(why)
    base = debootstrap.root_tarball("python", ("python3-venv", "ca-certificates"))
    dockerd.docker("import", str(base), "local/debian-python")
    built = subprocess.run(["bash", str(REPO / "scripts/build-container.sh"),
                            "local/debian-python", "local/guestagent"],
                           env={**dockerd.env(), "PYTHON": sys.executable},
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    (work / "md.json").write_text(json.dumps({"deployments": [{
        "id": "c0ffee00-0000-4000-8000-000000000001", "name": "in-container", "group": "script",
        "config": "#!/bin/sh\necho \"from $where\" > /work/out\n",
        "inputs": [{"name": "where", "value": "container"},
                   {"name": "deploy_signal_transport", "value": "NO_SIGNAL"}]}]}))
    run = dockerd.docker("run", "--rm", "--network", "host", "-v", f"{work}:/work",
                         "local/guestagent", "--once", "--config", "/dev/null",
                         "--state-dir", "/work/state", "--deployed-dir", "/work/none",
                         "--collectors", "heat_local", "--heat-local-path", "/work/md.json",
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / "out").read_text() == "from container\n"
    assert os.stat(work / "state").st_mode & 0o777 == 0o700
