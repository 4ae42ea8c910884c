"""boot-config: the cloud-config user-data and the Heat::InstallConfigAgent template."""

from __future__ import annotations

from pathlib import Path

import yaml

BOOT = Path(__file__).resolve().parent.parent / "boot-config"
USER_DATA = BOOT / "guestagent-user-data.yaml"



def test_user_data_is_cloud_config():
    text = USER_DATA.read_text()
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert {"python3-venv", "python3-dbus"} <= set(data["packages"])
    files = {f["path"]: f for f in data["write_files"]}
    assert files["/usr/local/sbin/install-guestagent"]["permissions"] == "0755"
    assert files["/usr/local/sbin/install-guestagent"]["content"].startswith("#!/bin/sh\n")
    assert 'GUESTAGENT_PIP_ARGS="guestagent"' in files["/etc/guestagent/install.env"]["content"]
    assert data["runcmd"] == [["/usr/local/sbin/install-guestagent"]]


def test_environment_maps_install_config_agent():
    env = yaml.safe_load((BOOT / "guestagent-env.yaml").read_text())
    target = env["resource_registry"]["Heat::InstallConfigAgent"]
    template = yaml.safe_load((BOOT / target).read_text())
    assert str(template["heat_template_version"]) == "2016-10-14"
    config = template["resources"]["install_config_agent"]
    assert config["type"] == "OS::Heat::SoftwareConfig"
    assert config["properties"]["group"] == "ungrouped"
    replace = config["properties"]["config"]["str_replace"]
    assert replace["template"] == {"get_file": USER_DATA.name}
    assert (BOOT / USER_DATA.name).is_file()
    # The output servers read, as in the standard boot-config templates.
    assert template["outputs"]["config"]["value"] == {"get_resource": "install_config_agent"}
    # What Heat's str_replace does with the parameter must still be cloud-config.
    (key,) = replace["params"]
    assert key in USER_DATA.read_text()
    rendered = USER_DATA.read_text().replace(key, 'GUESTAGENT_PIP_ARGS="guestagent==0.1.0"')
    data = yaml.safe_load(rendered)
    env_file = {f["path"]: f for f in data["write_files"]}["/etc/guestagent/install.env"]
    assert env_file["content"] == 'GUESTAGENT_PIP_ARGS="guestagent==0.1.0"\n'
