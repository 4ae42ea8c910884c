"""`guestagent logs --bundle`: state and logs in a tarball with every secret redacted."""

import json
import os
import subprocess
import sys
import tarfile

from tests.support.agent import REPO, _env, deployment, run_agent


def test_bundle_holds_the_state_and_no_secret(fakecloud, tmp_path):
    state = tmp_path / "state"
    leaky = deployment(fakecloud, "leaky", "#!/bin/sh\necho \"pw=$deploy_password\"\n"
                                           "echo \"url=$deploy_signal_id\" >&2\n",
                       transport="HEAT_SIGNAL")
    cfn = deployment(fakecloud, "signed", "#!/bin/sh\necho \"$deploy_signal_id\"\nexit 3\n")
    unsent = deployment(fakecloud, "unsent", "#!/bin/sh\n", transport="TEMP_URL_SIGNAL")
    fakecloud.set_metadata({
        "deployments": [leaky, cfn, unsent],
        "os-collect-config": {"heat": {"password": "heat-api-secret-1", "user_id": "u"},
                              "request": {"metadata_url": fakecloud.metadata_url}}})
    fakecloud.fail("/swift/", 503)  # `unsent` keeps its credentials on disk, in the outbox
    run_agent(state, "--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)

    secrets = {"heat-api-secret-1"}
    for dep in (leaky, cfn, unsent):
        for item in dep["inputs"]:
            if item["name"] in ("deploy_password", "deploy_signal_id"):
                secrets.add(item["value"])
                if "?" in item["value"]:
                    secrets.add(item["value"].split("?", 1)[1])
    # The secrets really are on disk and in the hooks' output before bundling.
    on_disk = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())
    assert all(s.encode() in on_disk for s in secrets if "?" not in s)

    out = tmp_path / "bundle.tar.gz"
    proc = subprocess.run([sys.executable, "-m", "guestagent", "logs", "--bundle", str(out),
                           "--config", "/dev/null", "--state-dir", str(state)], check=False,
                          capture_output=True, text=True, timeout=120, env=_env(None), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert os.stat(out).st_mode & 0o777 == 0o600

    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
    for name, data in members.items():
        for secret in secrets:
            assert secret.encode() not in data, (name, secret[:12])
    assert "README.txt" in members and "journal.txt" in members
    journals = [json.loads(d) for n, d in members.items() if n.endswith("journal.json")]
    assert sorted(j["name"] for j in journals) == ["leaky", "signed", "unsent"]
    assert {j["name"]: j["status_code"] for j in journals}["signed"] == 3
    stored = next(json.loads(d) for n, d in members.items()
                  if n.endswith("deployment.json") and json.loads(d)["name"] == "unsent")
    assert {i["name"]: i.get("value") for i in stored["inputs"]}["deploy_signal_id"] \
        == "<redacted>"
    stdout = next(d for n, d in members.items()
                  if n.endswith("/stdout") and b"pw=" in d).decode()
    assert stdout.startswith("pw=<redacted>")
    assert not any(n.startswith("state/hooks/") for n in members)
    # The diagnostics beside the state: version, effective config, doctor, journal summary.
    from guestagent import __version__
    assert members["version.txt"].decode().startswith(f"guestagent {__version__}\nPython ")
    effective = json.loads(members["config.json"])
    assert effective["state_dir"] == str(state)
    # The metadata's os-collect-config key is applied, its secret redacted.
    assert effective["sources"]["heat"] == {"password": "<redacted>", "user_id": "u"}
    assert effective["sources"]["request"]["metadata_url"] == "<redacted>"
    doctor_lines = members["doctor.txt"].decode().splitlines()
    assert any(line.endswith(f"state dir {state}: 0700, ours, writable") for line in doctor_lines)
    summary = members["journal-summary.txt"].decode()
    assert summary.startswith("3 deployment(s): ")
    assert all(name in summary for name in ("leaky", "signed", "unsent"))
