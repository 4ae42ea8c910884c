"""The old heat-config runner's protocol, for driving hook executables as it did.

Written here from heat-agents' documented behaviour (its `55-heat-config`
phase script), not taken from it. For each deployment of the list in
`$HEAT_SHELL_CONFIG`:

- inputs typed `String` whose value is not a string are turned into strings;
- group `component`: the entry of `config.configs` listing the action
  replaces `config` and `group` (none: the deployment is skipped);
- a marker `<deployed>/<id>.json` already there: skipped;
- the hook is the executable named after the group (characters other than
  letters, digits, `-` and `_` dropped) in `$HEAT_CONFIG_HOOKS`,
  /usr/libexec/heat-config/hooks or /var/lib/heat-config/hooks;
- the marker is written (indent 2), then the hook runs with `json.dumps(c)`
  on stdin;
- its stdout parsed as JSON is the signal data; when it is not JSON, the
  data is stdout, stderr and the exit status;
- `<deployed>/<id>.notify.json` gets the signal data (indent 2), and
  `$HEAT_CONFIG_NOTIFY <marker>` runs with `json.dumps(data)` on stdin.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

HOOK_DIRS = ("/usr/libexec/heat-config/hooks", "/var/lib/heat-config/hooks")


def _dump_indented(path: Path, data) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, separators=(",", ": "))


def _hook_path(group: str, environ: Mapping[str, str]) -> Path | None:
    name = "".join(ch for ch in group if ch.isalnum() or ch in "-_")
    for directory in (environ.get("HEAT_CONFIG_HOOKS"), *HOOK_DIRS):
        if directory and (Path(directory) / name).exists():
            return Path(directory) / name
    return None


def _resolve_component(c: dict) -> bool:
    action = {i["name"]: i["value"] for i in c["inputs"]}.get("deploy_action")
    for entry in (c.get("config") or {}).get("configs") or ():
        if action in entry["actions"]:
            c["config"], c["group"] = entry["config"], entry["tool"]
            return True
    return False


def run_one(c: dict, deployed: Path, environ: Mapping[str, str]) -> None:
    """Run one deployment's hook and its notifier, as the old runner did."""
    for item in c.get("inputs", []):
        if item.get("type") == "String" and not isinstance(item["value"], str):
            item["value"] = str(item["value"])
    if c.get("group") == "component" and not _resolve_component(c):
        return
    marker = deployed / f"{c['id']}.json"
    hook = _hook_path(c["group"], environ)
    if marker.exists() or hook is None:
        return
    _dump_indented(marker, c)
    done = subprocess.run([str(hook)], input=json.dumps(c).encode("utf-8", "replace"),
                          capture_output=True, env=dict(environ), check=False)
    try:
        data = json.loads(done.stdout.decode("utf-8", "replace")) if done.stdout else {}
    except ValueError:
        data = None
    if data is None or (done.returncode and not done.stdout):
        data = {"deploy_stdout": done.stdout.decode("utf-8", "replace"),
                "deploy_stderr": done.stderr.decode("utf-8", "replace"),
                "deploy_status_code": done.returncode}
    _dump_indented(deployed / f"{c['id']}.notify.json", data)
    subprocess.run([environ.get("HEAT_CONFIG_NOTIFY", "heat-config-notify"), str(marker)],
                   input=json.dumps(data).encode("utf-8", "replace"), capture_output=True,
                   env=dict(environ), check=False)


def run(environ: Mapping[str, str]) -> None:
    """One run of the phase script over `$HEAT_SHELL_CONFIG`."""
    deployed = Path(environ.get("HEAT_CONFIG_DEPLOYED", "/var/lib/heat-config/deployed"))
    deployed.mkdir(mode=0o700, parents=True, exist_ok=True)
    configs = json.loads(Path(environ["HEAT_SHELL_CONFIG"]).read_text())
    for c in configs:
        run_one(c, deployed, environ)
