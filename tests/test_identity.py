"""A server booted from a snapshot of another: the state directory (and the heat_local boot
file) come along on the disk, but the config drive is the new instance's. The agent must not
replay the old journal, nor signal the old stack with the old server's credentials."""

import json
import shutil

from guestagent import identity
from tests.support.agent import deployment, run_agent, signals_for
from tests.test_source_config_drive import heat_user_data, make_iso

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"


def drive(tmp_path, name, uuid, boot=None):
    tree = tmp_path / f"tree-{name}"
    (tree / "openstack" / "latest").mkdir(parents=True)
    (tree / "openstack" / "latest" / "meta_data.json").write_text(json.dumps({"uuid": uuid}))
    if boot is not None:
        (tree / "openstack" / "latest" / "user_data").write_bytes(heat_user_data(boot))
    return make_iso(tree, tmp_path / f"{name}.iso")


def config(tmp_path, name, iso, boot_file):
    conf = tmp_path / f"{name}.yaml"
    conf.write_text(json.dumps({"collectors": ["heat_local", "config_drive"],
                                "heat_local": {"path": [str(boot_file)]},
                                "config_drive": {"device": str(iso),
                                                 "boot_metadata_file": str(boot_file)}}))
    return conf


def test_a_cloned_server_never_signals_the_old_stack(fakecloud, tmp_path):
    boot_file = tmp_path / "cfn-init-data"
    old = deployment(fakecloud, "old", "#!/bin/sh\necho old\n")
    boot_file.write_text(json.dumps({"deployments": [old]}))
    fakecloud.fail("/cfn/", 503)  # instance A's signal stays pending in its journal
    state_a = tmp_path / "state-a"
    first = run_agent(state_a, "--config", str(config(tmp_path, "a", drive(tmp_path, "a", A),
                                                      boot_file)))
    assert first.returncode == 1, first.stderr
    assert json.loads((state_a / "instance.json").read_text())["instance_id"] == A

    # The snapshot: the state directory and the boot file come along unchanged.
    state_b = tmp_path / "state-b"
    shutil.copytree(state_a, state_b, symlinks=True)
    fakecloud.recover()
    new = deployment(fakecloud, "new", "#!/bin/sh\necho new\n")
    iso_b = drive(tmp_path, "b", B, boot={"deployments": [new]})
    second = run_agent(state_b, "--config", str(config(tmp_path, "b", iso_b, boot_file)))
    assert second.returncode == 0, second.stderr
    assert "belonged to instance " + A in second.stderr

    assert signals_for(fakecloud, "old") == []          # never signalled, from either life
    assert [s["deploy_stdout"] for s in signals_for(fakecloud, "new")] == ["new\n"]
    record = json.loads((state_b / "instance.json").read_text())
    assert record["instance_id"] == B and record["previous"]["instance_id"] == A
    archived = list((state_b / "archive").iterdir())
    assert len(archived) == 1
    old_dir = archived[0] / "deployments" / old["id"]
    assert json.loads((old_dir / "journal.json").read_text())["state"] == "finished"
    assert not (old_dir / "deployment.json").exists()  # the old credentials are gone
    assert not boot_file.exists()                       # the old boot metadata too
    assert (archived[0] / "boot").is_dir()
    assert not (state_b / "deployments" / old["id"]).exists()


def test_same_instance_keeps_its_journal_and_a_rewritten_boot_file_is_trusted(tmp_path):
    from guestagent import config as config_module
    from guestagent.state import StateDir

    boot_file = tmp_path / "cfn-init-data"
    boot_file.write_text("{}")
    iso = drive(tmp_path, "a", A)
    settings = config_module.load(str(config(tmp_path, "a", iso, boot_file)),
                                  {"state_dir": str(tmp_path / "s")}).settings()
    statedir = StateDir(tmp_path / "s").ensure()
    assert identity.ensure(statedir, settings) is None
    (statedir.root / "deployments" / "x").mkdir()
    assert identity.ensure(statedir, settings) is None
    assert (statedir.root / "deployments" / "x").is_dir()
    # On the clone, cloud-init wrote this instance's boot file anew: it stays.
    boot_file.write_text('{"fresh": true}')
    settings_b = config_module.load(str(config(tmp_path, "b", drive(tmp_path, "b", B),
                                               boot_file)),
                                    {"state_dir": str(tmp_path / "s")}).settings()
    change = identity.ensure(statedir, settings_b)
    assert change is not None and change.previous == A and change.current == B
    assert boot_file.read_text() == '{"fresh": true}'
    assert not (statedir.root / "deployments" / "x").exists()


def test_no_id_at_all_changes_nothing(tmp_path):
    from guestagent import config as config_module
    from guestagent.state import StateDir

    settings = config_module.load("/dev/null", {"collectors": ["local"],
                                                "state_dir": str(tmp_path / "s")}).settings()
    statedir = StateDir(tmp_path / "s").ensure()
    assert identity.discover(settings, dmi_path=str(tmp_path / "none")) == \
        (None, "no config drive uuid and no system UUID")
    assert identity.ensure(statedir, settings, dmi_path=str(tmp_path / "none")) is None
    # No id at all: each server still gets its own splay phase, stable across restarts.
    seed = identity.schedule_seed(statedir)
    assert len(seed) == 16
    identity.ensure(statedir, settings, dmi_path=str(tmp_path / "none"))
    assert identity.schedule_seed(statedir) == seed
    other = StateDir(tmp_path / "s2").ensure()
    identity.ensure(other, settings, dmi_path=str(tmp_path / "none"))
    assert identity.schedule_seed(other) != seed
