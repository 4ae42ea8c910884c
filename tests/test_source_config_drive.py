"""The config_drive source on real ISO 9660 and vfat images (genisoimage, mkfs.vfat + mcopy)."""

import gzip
import json
import shutil
import subprocess
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from guestagent.collectors import build
from guestagent.collectors.base import NOT_MODIFIED
from guestagent.collectors.config_drive import cfn_init_data, find_device
from guestagent.errors import SourceUnavailable
from guestagent.state import SourceCache

BOOT = {"deployments": [], "os-collect-config": {"collectors": ["heat"],
                                                 "heat": {"user_id": "u"}}}
META = {"uuid": "0b1c", "hostname": "vm1", "meta": {"k": "v"}}
EC2 = {"instance-id": "i-0001", "public-keys": {"0": {"openssh-key": "ssh-ed25519 AAAA k"}}}


def heat_user_data(boot: dict) -> bytes:
    """MIME multipart the way Heat builds it: named attachments, several x-cfninitdata parts."""
    msg = MIMEMultipart()
    for name, subtype, content in (
            ("cloud-config", "cloud-config", "#cloud-config\n{}\n"),
            ("cfn-metadata-server", "x-cfninitdata", "http://192.0.2.1:8000/v1/"),
            ("cfn-init-data", "x-cfninitdata", json.dumps(boot)),
            ("cfn-userdata", "x-cfninitdata", "")):
        part = MIMEText(content, _subtype=subtype)
        part.add_header("Content-Disposition", "attachment", filename=name)
        msg.attach(part)
    return msg.as_bytes()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "openstack" / "latest").mkdir(parents=True)
    (root / "ec2" / "latest").mkdir(parents=True)
    (root / "openstack" / "latest" / "meta_data.json").write_text(json.dumps(META))
    (root / "openstack" / "latest" / "user_data").write_bytes(heat_user_data(BOOT))
    (root / "ec2" / "latest" / "meta-data.json").write_text(json.dumps(EC2))
    return root


def _need(*tools):
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} missing: run scripts/setup-test-env.sh")


def make_iso(tree, out):
    _need("genisoimage")
    subprocess.run(["genisoimage", "-quiet", "-o", str(out), "-V", "config-2", "-r", "-J",
                    str(tree)], check=True)
    return out


def make_vfat(tree, out):
    _need("mkfs.vfat", "mcopy")
    subprocess.run(["truncate", "-s", "4M", str(out)], check=True)
    subprocess.run(["mkfs.vfat", "-n", "config-2", str(out)], check=True, capture_output=True)
    subprocess.run(["mcopy", "-s", "-i", str(out)] + [str(p) for p in tree.iterdir()] + ["::/"],
                   check=True, env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    return out


@pytest.mark.parametrize("make", [make_iso, make_vfat], ids=["iso9660", "vfat"])
def test_drive_gives_boot_metadata(tmp_path, tree, make):
    image = make(tree, tmp_path / "cd.img")
    source = build("config_drive", {"device": str(image),
                                    "boot_metadata_file": str(tmp_path / "absent")})
    doc = source.collect(None).document
    assert doc == {**BOOT, "openstack": META, "ec2": EC2}
    # Read once: the drive does not change while the instance runs.
    assert source.collect(SourceCache(doc)) is NOT_MODIFIED


def test_existing_cfn_init_data_file_wins(tmp_path, tree):
    image = make_iso(tree, tmp_path / "cd.iso")
    existing = tmp_path / "cfn-init-data"
    existing.write_text("{}")
    doc = build("config_drive", {"device": str(image), "boot_metadata_file": str(existing)}
                ).collect(None).document
    assert doc == {"openstack": META, "ec2": EC2}


def test_partial_drive_and_bad_json(tmp_path, tree):
    (tree / "openstack" / "latest" / "user_data").unlink()
    (tree / "ec2" / "latest" / "meta-data.json").write_text("{broken")
    image = make_vfat(tree, tmp_path / "cd.img")
    with pytest.raises(SourceUnavailable, match=r"ec2/latest/meta-data.json: not valid JSON"):
        build("config_drive", {"device": str(image)}).collect(None)
    (tree / "ec2" / "latest" / "meta-data.json").unlink()
    image = make_iso(tree, tmp_path / "cd2.iso")
    doc = build("config_drive", {"device": str(image)}).collect(None).document
    assert doc == {"openstack": META}


def test_not_a_drive(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 65536)
    with pytest.raises(SourceUnavailable, match="neither ISO 9660 nor vfat"):
        build("config_drive", {"device": str(junk)}).collect(None)
    with pytest.raises(SourceUnavailable, match="does not exist"):
        build("config_drive", {"device": str(tmp_path / "nope")}).collect(None)


def test_cfn_init_data_parsing():
    assert cfn_init_data(heat_user_data(BOOT)) == BOOT
    assert cfn_init_data(gzip.compress(heat_user_data(BOOT))) == BOOT
    assert cfn_init_data(b"#!/bin/sh\necho plain user data\n") is None
    with pytest.raises(SourceUnavailable, match="cfn-init-data: must hold a JSON object"):
        cfn_init_data(heat_user_data([1]))  # type: ignore[arg-type]


def test_found_by_label_as_a_loop_device(tmp_path, tree):
    image = make_iso(tree, tmp_path / "cd.iso")
    attach = subprocess.run(["losetup", "-f", "--show", "-r", str(image)],
                            capture_output=True, text=True)
    if attach.returncode != 0:
        pytest.skip(f"no loop devices here: {attach.stderr.strip()}")
    loop = attach.stdout.strip()
    try:
        found = subprocess.run(["blkid", "-c", "/dev/null", "-t", "LABEL=config-2", "-o",
                                "device"], capture_output=True, text=True).stdout.split()
        assert loop in found
        assert find_device() is not None
        doc = build("config_drive", {"device": loop,
                                     "boot_metadata_file": str(tmp_path / "absent")}
                    ).collect(None).document
        assert doc["openstack"] == META and doc["deployments"] == []
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
