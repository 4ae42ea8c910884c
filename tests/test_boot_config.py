"""boot-config: the cloud-config user-data and the Heat::InstallConfigAgent template."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

BOOT = Path(__file__).resolve().parent.parent / "boot-config"
USER_DATA = BOOT / "guestagent-user-data.yaml"
EMPTY_ENV = ('GUESTAGENT_ARTIFACT_URL=""\nGUESTAGENT_ARTIFACT_SHA256=""\n'
             'GUESTAGENT_PIP_ARGS=""\n')

def test_user_data_is_cloud_config():
    text = USER_DATA.read_text()
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert {"python3-venv", "python3-dbus"} <= set(data["packages"])
    files = {f["path"]: f for f in data["write_files"]}
    assert files["/usr/local/sbin/install-guestagent"]["permissions"] == "0755"
    assert files["/usr/local/sbin/install-guestagent"]["content"].startswith("#!/bin/sh\n")
    # No package name anywhere: by default nothing is installed from an index.
    assert files["/etc/guestagent/install.env"]["content"] == EMPTY_ENV
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
    params = template["parameters"]
    assert all(params[p]["default"] == "" for p in params), "a default would name a package"
    # What Heat's str_replace does with the parameters must still be cloud-config.
    values = {"guestagent_artifact_url": "https://example.invalid/gh.tar.gz",
              "guestagent_artifact_sha256": "ab" * 32, "guestagent_pip_args": ""}
    rendered = USER_DATA.read_text()
    for key, value in replace["params"].items():
        assert key in rendered
        (param,) = [p["get_param"] for p in value["list_join"][1] if isinstance(p, dict)]
        rendered = rendered.replace(key, key[:-1] + values[param] + '"')
    data = yaml.safe_load(rendered)
    env_file = {f["path"]: f for f in data["write_files"]}["/etc/guestagent/install.env"]
    assert env_file["content"] == ('GUESTAGENT_ARTIFACT_URL="https://example.invalid/gh.tar.gz"\n'
                                   f'GUESTAGENT_ARTIFACT_SHA256="{"ab" * 32}"\n'
                                   'GUESTAGENT_PIP_ARGS=""\n')


def _install_script(tmp_path: Path, env_text: str) -> subprocess.CompletedProcess:
    """The user-data's install script run by /bin/sh against `env_text` as its install.env."""
    files = {f["path"]: f for f in yaml.safe_load(USER_DATA.read_text())["write_files"]}
    script = tmp_path / "install-guestagent"
    script.write_text(files["/usr/local/sbin/install-guestagent"]["content"])
    env_file = tmp_path / "install.env"
    # No baked wheelhouse on this machine: point the default somewhere empty.
    env_file.write_text(env_text + f"GUESTAGENT_WHEELHOUSE={tmp_path}/no-wheelhouse\n")
    return subprocess.run(["/bin/sh", str(script)], check=False, capture_output=True, text=True,
                          timeout=60,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                               "GUESTAGENT_INSTALL_ENV": str(env_file)})


def test_install_without_an_artifact_fails_and_says_why(tmp_path):
    done = _install_script(tmp_path, EMPTY_ENV)
    assert done.returncode == 1
    assert "no artifact: set GUESTAGENT_ARTIFACT_URL and GUESTAGENT_ARTIFACT_SHA256" in done.stderr
    assert "from a package index by name is refused" in done.stderr
    assert "guestagent NOT installed" in done.stderr


def test_install_refuses_an_artifact_without_its_hash(tmp_path):
    artifact = tmp_path / "guestagent-wheelhouse.tar.gz"
    artifact.write_bytes(b"not checked")
    done = _install_script(tmp_path, f'GUESTAGENT_ARTIFACT_URL="file://{artifact}"\n'
                                     'GUESTAGENT_ARTIFACT_SHA256=""\n')
    assert done.returncode == 1
    assert "GUESTAGENT_ARTIFACT_SHA256 is empty" in done.stderr


@pytest.mark.parametrize("name", ["guestagent-wheelhouse.tar.gz", "guestagent-0.1.0-py3-none-any.whl"])
def test_install_refuses_an_artifact_whose_hash_differs(tmp_path, name):
    artifact = tmp_path / name
    artifact.write_bytes(b"tampered")
    actual = hashlib.sha256(b"tampered").hexdigest()
    done = _install_script(tmp_path, f'GUESTAGENT_ARTIFACT_URL="file://{artifact}"\n'
                                     f'GUESTAGENT_ARTIFACT_SHA256="{"0" * 64}"\n')
    assert done.returncode == 1
    assert f"{name}: sha256 is {actual}, expected {'0' * 64}" in done.stderr
    assert not (tmp_path / "opt").exists()
