"""The config drive a cloud attaches to a server booted by Heat: ISO 9660, label config-2.

It holds ``openstack/latest/meta_data.json`` (the server's uuid and names, as Nova writes
them) and ``openstack/latest/user_data``: the MIME multipart Heat builds for a server with
``user_data_format: SOFTWARE_CONFIG``, whose ``cfn-init-data`` part is the server's boot
metadata. For an OS::Heat::DeployedServer that metadata is its ``os_collect_config``
attribute under the ``os-collect-config`` key (what tests/e2e/agentguest.py boots with).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path


def heat_user_data(boot_metadata: dict, cfn_url: str) -> bytes:
    """Heat's SOFTWARE_CONFIG user_data: named attachments, several x-cfninitdata parts."""
    message = MIMEMultipart()
    for name, subtype, content in (
            ("cloud-config", "cloud-config", "#cloud-config\nmerge_how: dict(recurse_array)+list(append)\n"),
            ("cfn-metadata-server", "x-cfninitdata", cfn_url),
            ("cfn-init-data", "x-cfninitdata", json.dumps(boot_metadata)),
            ("cfn-userdata", "x-cfninitdata", "")):
        part = MIMEText(content, _subtype=subtype)
        part.add_header("Content-Disposition", "attachment", filename=name)
        message.attach(part)
    return message.as_bytes()


def meta_data(server_id: str, name: str) -> dict:
    """``meta_data.json`` as Nova writes it for a server without keys or files."""
    return {"uuid": server_id, "name": name, "hostname": name, "launch_index": 0,
            "availability_zone": "nova", "project_id": "", "meta": {}, "public_keys": {},
            "files": [], "devices": []}


def build(out: Path, *, server_id: str, name: str, os_collect_config: dict,
          cfn_url: str) -> Path:
    """Write the drive's ISO image to ``out`` (genisoimage, Rock Ridge and Joliet names)."""
    with tempfile.TemporaryDirectory(prefix="configdrive-") as tmp:
        latest = Path(tmp) / "openstack" / "latest"
        latest.mkdir(parents=True)
        (latest / "meta_data.json").write_text(json.dumps(meta_data(server_id, name)))
        (latest / "user_data").write_bytes(
            heat_user_data({"os-collect-config": os_collect_config}, cfn_url))
        subprocess.run(["genisoimage", "-quiet", "-o", str(out), "-V", "config-2", "-r", "-J",
                        tmp], check=True, capture_output=True, timeout=60)
    return out
