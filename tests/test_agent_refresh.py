"""The agent runs the refresh phases and templates on a metadata change, skips the old
heat-config runner, and applies a deployment's unit restarts."""

import json

from guestagent.refresh import SHIPPED
from tests.support.agent import deployment, run_agent, signals_for


def test_refresh_phases_and_templates_run_on_change_only(fakecloud, tmp_path):
    base = tmp_path / "orc"
    (base / "configure.d").mkdir(parents=True)
    (base / "configure.d" / "20-os-apply-config").symlink_to(
        SHIPPED / "configure.d" / "20-os-apply-config")
    record = base / "configure.d" / "30-record"
    record.write_text(f'#!/bin/sh\necho "$OS_CONFIG_FILES" >> {tmp_path}/refreshes\n')
    old = base / "configure.d" / "55-heat-config"
    old.write_text(f"#!/bin/sh\ntouch {tmp_path}/old-heat-config-ran\n")
    for script in (record, old):
        script.chmod(0o755)
    templates = tmp_path / "templates"
    target = templates / str(tmp_path / "etc" / "app.conf").lstrip("/")
    target.parent.mkdir(parents=True)
    target.write_text("listen={{app.port}}\n")

    fakecloud.set_metadata({"app": {"port": 8080}, "deployments": [
        deployment(fakecloud, "d1", "#!/bin/sh\ntrue\n")]})
    env = {"OS_REFRESH_CONFIG_BASE_DIR": str(base), "OS_CONFIG_APPLIER_TEMPLATES": str(templates)}
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    state = tmp_path / "state"

    proc = run_agent(state, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "etc" / "app.conf").read_text() == "listen=8080\n"
    [files] = (tmp_path / "refreshes").read_text().splitlines()
    assert files == str(state / "os-collect-config" / "request.json")
    assert json.loads(open(files).read())["app"] == {"port": 8080}
    assert not (tmp_path / "old-heat-config-ran").exists()
    assert "55-heat-config skipped" in proc.stderr
    assert len(signals_for(fakecloud, "d1")) == 1

    # Unchanged metadata: no refresh. Changed: the template follows.
    run_agent(state, *args, env=env)
    assert len((tmp_path / "refreshes").read_text().splitlines()) == 1
    fakecloud.set_metadata({"app": {"port": 9090}, "deployments": []})
    run_agent(state, *args, env=env)
    assert (tmp_path / "etc" / "app.conf").read_text() == "listen=9090\n"


def test_refresh_failure_does_not_stop_deployments(fakecloud, tmp_path):
    base = tmp_path / "orc"
    (base / "configure.d").mkdir(parents=True)
    bad = base / "configure.d" / "10-broken"
    bad.write_text("#!/bin/sh\necho nope >&2\nexit 4\n")
    bad.chmod(0o755)
    fakecloud.set_metadata({"deployments": [deployment(fakecloud, "d", "#!/bin/sh\necho ran\n")]})
    proc = run_agent(tmp_path / "state", "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url, env={"OS_REFRESH_CONFIG_BASE_DIR": str(base)})
    assert "configure.d/10-broken exited 4" in proc.stderr
    assert signals_for(fakecloud, "d")[0]["deploy_stdout"] == "ran\n"


def test_unit_actions_without_a_bus_and_with_bad_names(fakecloud, tmp_path):
    ok = deployment(fakecloud, "restarts", "#!/bin/sh\ntrue\n",
                    options={"restart_units": ["app.service"]})
    bad = deployment(fakecloud, "bad-unit", "#!/bin/sh\ntrue\n",
                     options={"reload_units": ["../../evil"]})
    fakecloud.set_metadata({"deployments": [ok, bad]})
    env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}
    proc = run_agent(tmp_path / "state", "--collectors", "request", "--request-metadata-url",
                     fakecloud.metadata_url, env=env)
    assert proc.returncode == 1
    [good] = signals_for(fakecloud, "restarts")
    assert good["deploy_status_code"] == 0
    assert "restart app.service: skipped, no system bus" in good["deploy_stdout"]
    [body] = signals_for(fakecloud, "bad-unit")
    assert body["deploy_status_code"] != 0 and "options.reload_units[0]" in body["deploy_stderr"]
