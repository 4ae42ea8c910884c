"""The VM boot test's parts, without a VM: the relay in a real namespace, the drive read by
the agent's own config_drive source, the run-log check, the element's package list."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest

from guestagent.collectors import build as build_source
from tests.vm import configdrive, image, netns
from tests.vm.runlog import RunOverlap, never_twice

OCC = {"collectors": ["heat"], "polling_interval": 30,
       "heat": {"auth_url": "http://127.0.0.1:5000/v3", "user_id": "u1", "password": "pw",
                "project_id": "p1", "stack_id": "s/1", "resource_name": "server"}}


def _need_netns() -> None:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")


@pytest.fixture
def namespace():
    _need_netns()
    space = netns.Namespace(f"vmparts-{os.getpid()}")
    yield space
    space.close()


@pytest.fixture
def loopback_server():
    """An HTTP server on the host's 127.0.0.1 (a stand-in for one of the lab's ports)."""
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"hello from {self.client_address[0]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _inside(space: netns.Namespace, url: str) -> subprocess.CompletedProcess:
    code = ("import sys, urllib.request\n"
            "try:\n    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n"
            "except OSError as e:\n    print('error', getattr(e, 'reason', e)); sys.exit(1)\n")
    return subprocess.run(space.exec_argv(["python3", "-c", code, url]), capture_output=True,
                          text=True, timeout=60, check=False)


def test_relay_reaches_host_loopback_from_the_namespace_and_nothing_else(namespace,
                                                                        loopback_server):
    relay = netns.Relay(namespace, (loopback_server,))
    try:
        done = _inside(namespace, f"http://{netns.GATEWAY}:{loopback_server}/")
        assert done.stdout.strip() == "hello from 127.0.0.1", done.stderr
        assert relay.connections == {loopback_server: 1}
        # the namespace has no route out: an address beyond the gateway is unreachable
        outside = _inside(namespace, "http://192.0.2.1/")
        assert outside.returncode == 1 and "unreachable" in outside.stdout
        # nor is the host's own loopback port reachable except through the relay
        direct = _inside(namespace, f"http://127.0.0.1:{loopback_server}/")
        assert direct.returncode == 1 and "refused" in direct.stdout
    finally:
        relay.close()


def test_config_drive_gives_the_agent_os_collect_config(tmp_path):
    if not shutil.which("genisoimage"):
        pytest.fail("genisoimage missing: run scripts/setup-test-env.sh")
    iso = configdrive.build(tmp_path / "config-2.iso", server_id="9f1c0e2a", name="vm1",
                            os_collect_config=OCC, cfn_url="http://127.0.0.1:8000/v1/")
    source = build_source("config_drive", {"device": str(iso),
                                           "boot_metadata_file": str(tmp_path / "absent")})
    document = source.collect(None).document
    assert document["os-collect-config"] == OCC
    assert document["openstack"]["uuid"] == "9f1c0e2a"
    assert subprocess.run(["blkid", "-o", "value", "-s", "LABEL", str(iso)], capture_output=True,
                          text=True, check=True).stdout.strip() == "config-2"
    json.dumps(document)  # what the agent merges must be plain JSON


def test_run_log_check_accepts_sequential_runs_and_rejects_overlaps():
    lines = ["boot a", "start 10 CREATE hi", "end 10 CREATE hi", "start 11 UPDATE clean reboot",
             "killed 11 UPDATE clean reboot", "boot b", "start 9 UPDATE clean reboot",
             "end 9 UPDATE clean reboot", "start 12 UPDATE power loss", "boot c",
             "start 12 UPDATE power loss", "end 12 UPDATE power loss"]
    events = never_twice(lines)
    assert events[3] == ("start", "UPDATE", "clean reboot") and events[-1][0] == "end"
    with pytest.raises(RunOverlap, match="started while"):
        never_twice(["boot a", "start 10 UPDATE x", "start 11 UPDATE x", "end 11 UPDATE x"])
    with pytest.raises(RunOverlap, match="end 10"):
        never_twice(["boot a", "start 11 UPDATE x", "end 10 UPDATE x"])


def test_image_includes_what_the_element_installs():
    assert set(image.element_packages()) == {"ca-certificates", "python3-dbus"}
    assert {"linux-image-cloud-amd64", "systemd-sysv", "nftables"} <= set(image.packages())
