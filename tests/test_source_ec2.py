"""The ec2 source against a metadata server on 169.254.169.254 in a private network namespace,
and its config drive fallback."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_source_config_drive import make_iso

ROOT = Path(__file__).resolve().parent.parent
SERVED = {
    "ami-id": "ami-00000001",
    "instance-id": "i-0000abcd",
    "local-ipv4": "10.0.0.5",
    "placement": {"availability-zone": "nova"},
    "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
    "public-keys": {"0": {"_name": "mykey", "openssh-key": "ssh-ed25519 AAAAC3 me@host"},
                    "1": {"_name": "other", "openssh-key": "ssh-rsa AAAAB3 you@host"}},
}
EXPECTED = {
    "ami-id": "ami-00000001",
    "instance-id": "i-0000abcd",
    "local-ipv4": "10.0.0.5",
    "placement": {"availability-zone": "nova"},
    "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
    "public-keys": {"0": {"openssh-key": "ssh-ed25519 AAAAC3 me@host"},
                    "1": {"openssh-key": "ssh-rsa AAAAB3 you@host"}},
}


def in_namespace(tree, options=None) -> dict:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("unshare/ip missing: run scripts/setup-test-env.sh")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(["unshare", "-n", sys.executable, str(ROOT / "tests" /
                                                                 "ec2_metadata_server.py"),
                           json.dumps(tree), json.dumps(options or {})],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_tree_from_the_link_local_service():
    result = in_namespace(SERVED)
    assert result.get("error") is None, result
    assert result["document"] == EXPECTED
    assert "/latest/meta-data/public-keys/0/" in result["requests"]
    assert "/latest/meta-data/public-keys/0/openssh-key" in result["requests"]


def test_service_error_is_unavailable_without_drive(tmp_path):
    result = in_namespace(None, {"timeout": 2, "config_drive_device": str(tmp_path / "none")})
    assert result["error"].startswith("SourceUnavailable: source ec2: GET "
                                      "http://169.254.169.254/latest/meta-data/: ConnectionError")
    assert "no config drive" in result["error"]


def test_falls_back_to_config_drive(tmp_path):
    tree = tmp_path / "tree"
    (tree / "ec2" / "latest").mkdir(parents=True)
    (tree / "ec2" / "latest" / "meta-data.json").write_text(json.dumps(EXPECTED))
    image = make_iso(tree, tmp_path / "cd.iso")
    result = in_namespace(None, {"timeout": 2, "config_drive_device": str(image)})
    assert result.get("error") is None, result
    assert result["document"] == EXPECTED


def test_listed_key_that_fails_is_an_error():
    result = in_namespace(dict(SERVED, hostname=None), {"config_drive": False})
    assert result["error"] == ("SourceUnavailable: source ec2: GET "
                               "http://169.254.169.254/latest/meta-data/hostname: HTTP 404")
