"""boot-config's user-data run the way cloud-init runs it, in a debootstrap tree; then the same
tree booted with a real systemd in a container runs guestagent.service.

Slow: debootstrap (cached in /var/cache/guestagent-tests), apt and pip in the tree.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.support import debootstrap
from tests.support.metadata_netns import script_deployment_in_root
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parent.parent
USER_DATA = REPO / "boot-config/guestagent-user-data.yaml"
WHEELHOUSE_SH = REPO / "scripts/wheelhouse.sh"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A bookworm tree (with systemd, not running) after the user-data's steps ran in it."""
    why = debootstrap.missing()
    if why:
        pytest.skip(why)
    tar = debootstrap.root_tarball("systemd", ("systemd", "systemd-sysv", "dbus"))
    work = tmp_path_factory.mktemp("boot-config")
    root = debootstrap.extract(tar, work / "root")
    # The release artifact exactly as an operator makes it; install.env names it by URL + sha256.
    built = subprocess.run(["bash", str(WHEELHOUSE_SH), "--out", str(work / "dist")],
                           check=True, capture_output=True, text=True, timeout=1200,
                           env={**os.environ, "PYTHON": sys.executable})
    sha256, tarball = built.stdout.strip().splitlines()[-1].split("  ", 1)
    cache = root / "var/cache/guestagent"
    cache.mkdir(parents=True)
    artifact = cache / Path(tarball).name
    artifact.write_bytes(Path(tarball).read_bytes())
    data = yaml.safe_load(USER_DATA.read_text())
    steps = {}
    # cloud-init order: packages, write_files, runcmd.
    steps["packages"] = debootstrap.chroot(
        root, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
              "--no-install-recommends " + " ".join(map(shlex.quote, data["packages"])))
    for item in data["write_files"]:
        path = root / item["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        content = item["content"]
        if item["path"] == "/etc/guestagent/install.env":
            content = (f'GUESTAGENT_ARTIFACT_URL="file:///var/cache/guestagent/{artifact.name}"\n'
                       f'GUESTAGENT_ARTIFACT_SHA256="{sha256}"\nGUESTAGENT_PIP_ARGS=""\n')
        path.write_text(content)
        path.chmod(int(item["permissions"], 8))
    steps["runcmd"] = [debootstrap.chroot(root, shlex.join(cmd)) for cmd in data["runcmd"]]
    yield root, steps


def test_user_data_installs_the_agent(installed):
    root, steps = installed
    assert steps["packages"].returncode == 0, steps["packages"].stderr[-3000:]
    for done in steps["runcmd"]:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "installed and enabled guestagent.service" in steps["runcmd"][-1].stdout
    assert "systemd is not running here" in steps["runcmd"][-1].stdout
    assert os.access(root / "opt/guestagent/bin/guestagent", os.X_OK)
    assert (root / "etc/systemd/system/multi-user.target.wants/guestagent.service").is_symlink()
    version = debootstrap.chroot(root, "guestagent --version")
    assert version.returncode == 0 and version.stdout.startswith("guestagent ")


def test_agent_from_user_data_completes_a_deployment(installed, tmp_path):
    root, _ = installed
    done, signal = script_deployment_in_root(root, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert signal["deploy_status_code"] == 0 and signal["deploy_stdout"] == "hello image\n"


def docker_exec(dockerd, container: str, *argv: str) -> subprocess.CompletedProcess:
    return dockerd.docker("exec", container, *argv, check=False)


def test_real_systemd_runs_the_unit(installed, dockerd, tmp_path):
    """Boot the tree with systemd as PID 1: the unit starts (READY after the first pass), its
    hardening lets a hook work, and units restart over the real system bus."""
    root, _ = installed
    boot = root / "var/lib/heat-cfntools/cfn-init-data"
    boot.parent.mkdir(parents=True, exist_ok=True)
    boot.write_text(json.dumps({"deployments": [{
        "id": "6e0e4d51-0000-4000-8000-0000000000b0", "name": "at-boot", "group": "script",
        "config": "#!/bin/sh\nid -u > /root/boot-deployment\napt-config dump >/dev/null\n",
        "inputs": [{"name": "deploy_signal_transport", "value": "NO_SIGNAL"}]}]}))
    boot.chmod(0o600)
    marker = root / "etc/systemd/system/marker.service"
    marker.write_text("[Service]\nType=oneshot\nRemainAfterExit=yes\n"
                      "ExecStart=/bin/sh -c 'echo started >> /root/marker-starts'\n")
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True, timeout=600)
    image = "local/guestagent-systemd"
    dockerd.docker("import", "--change", 'CMD ["/sbin/init"]', str(tar), image)
    run = dockerd.docker("run", "-d", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                         "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", image, "/sbin/init")
    container = run.stdout.strip()
    try:
        deadline = time.monotonic() + 180
        state = ""
        while time.monotonic() < deadline:
            state = docker_exec(dockerd, container, "systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)  # polling systemd's own state, bounded by the deadline
        status = docker_exec(dockerd, container, "systemctl", "status", "guestagent").stdout
        assert state in ("running", "degraded"), status
        # Type=notify: "active" only once the agent said READY=1 after its first pass.
        active = docker_exec(dockerd, container, "systemctl", "is-active", "guestagent")
        assert active.stdout.strip() == "active", status
        ran = docker_exec(dockerd, container, "cat", "/root/boot-deployment")
        assert ran.stdout == "0\n", status
        # Restart over systemd's D-Bus API, from the agent's own environment.
        code = textwrap.dedent("""
            from guestagent import systemd
            from guestagent.deployments import parse_one
            dep = parse_one({"id": "r1", "group": "script", "config": "",
                             "options": {"restart_units": ["marker.service"]}})
            for _ in range(2):
                print(systemd.apply_unit_actions(dep))
            with systemd.ShutdownInhibitor().hold("test deployment") as taken:
                import subprocess
                listing = subprocess.run(["systemd-inhibit", "--list", "--no-pager"],
                                         capture_output=True, text=True).stdout
            print(taken, "guestagent" in listing and "test deployment" in listing)
        """)
        out = docker_exec(dockerd, container, "/opt/guestagent/bin/python", "-c", code)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[:2] == ["['restart marker.service: active']"] * 2
        starts = docker_exec(dockerd, container, "cat", "/root/marker-starts").stdout
        assert starts == "started\nstarted\n"
        assert lines[2] == "True True", out.stdout
        _kill_9_under_systemd(dockerd, container)
    finally:
        dockerd.docker("rm", "-f", container, check=False)


SLOW = """#!/bin/bash
exec 9>>/root/slow.lock
flock -n 9 || echo "OVERLAP $$" >> /root/slow.log
echo "start $$" >> /root/slow.log
if [ ! -e /root/slow.first ]; then touch /root/slow.first; sleep 300; fi
echo "end $$" >> /root/slow.log
"""


def _kill_9_under_systemd(dockerd, container: str) -> None:
    """SIGKILL of the agent while a hook runs, under systemd with the shipped unit: systemd
    restarts it and the deployment runs again, never beside the first copy."""
    doc = json.dumps({"deployments": [{
        "id": "6e0e4d51-0000-4000-8000-0000000000c1", "name": "slow", "group": "script",
        "config": SLOW, "inputs": [{"name": "deploy_signal_transport", "value": "NO_SIGNAL"}]}]})
    wrote = docker_exec(dockerd, container, "sh", "-c",
                        "umask 077 && mkdir -p /var/lib/os-collect-config/local-data && "
                        f"cat > /var/lib/os-collect-config/local-data/slow.json <<'EOF'\n{doc}\nEOF")
    assert wrote.returncode == 0, wrote.stderr

    def log() -> str:
        return docker_exec(dockerd, container, "cat", "/root/slow.log").stdout

    wait_until(lambda: "start" in log(), timeout=60, what="the slow hook to start")
    killed = docker_exec(dockerd, container, "systemctl", "kill", "--kill-who=main",
                         "--signal=KILL", "guestagent")
    assert killed.returncode == 0, killed.stderr
    wait_until(lambda: "end" in log(), timeout=120, what="the deployment to run again")
    lines = log().splitlines()
    assert not [line for line in lines if line.startswith("OVERLAP")], lines
    assert [line.split()[0] for line in lines] == ["start", "start", "end"], lines
    restarts = docker_exec(dockerd, container, "systemctl", "show", "-p", "NRestarts",
                           "guestagent").stdout.strip()
    assert restarts == "NRestarts=1", restarts
