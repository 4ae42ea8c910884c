"""Wall time of each built-in hook for a trivial deployment (run by hand, not in the tests).

    python bench/hooks.py            # docker hooks too when DOCKER_HOST names an engine
                                     # holding the image local/busybox

In process (HOOK.run, what the agent pays) and standalone
(`python -m guestagent.hooks.<module>`, what an old 55-heat-config pays).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from guestagent.deployments import parse_one
from guestagent.hooks import BUILTIN, find
from guestagent.hooks.base import HookContext


def trivial(group: str, tmp: Path) -> tuple[object, str]:
    """A do-almost-nothing config for `group`, and the action to use."""
    return {
        "script": "#!/bin/sh\ntrue\n",
        "puppet": "notice('trivial')",
        "ansible": "- hosts: localhost\n  gather_facts: false\n  tasks: []\n",
        "docker-compose": "services:\n  web:\n    image: local/busybox\n"
                          "    command: [sleep, '60']\n    stop_signal: SIGKILL\n",
        "docker-cmd": {"bench": {"image": "local/busybox", "command": "sleep 60"}},
        "json-file": {str(tmp / "bench.json"): {"a": 1}},
        "apply-config": {},
        "component": {"configs": [{"actions": ["CREATE"], "tool": "script", "config": "true"}]},
    }[group]


def deployment(group: str, tmp: Path, action: str = "CREATE") -> dict:
    return {"id": f"bench-{group}-{action}", "name": f"bench-{group}", "group": group,
            "config": trivial(group, tmp), "options": {}, "outputs": [],
            "inputs": [{"name": "deploy_action", "value": action}]}


def main() -> None:
    docker = bool(os.environ.get("DOCKER_HOST"))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        env = {**os.environ, "HEAT_JSON_FILE_ALLOWED_DIRS": str(tmp),
               "OS_CONFIG_APPLIER_TEMPLATES": str(tmp / "none")}
        os.environ.update(env)
        print(f"{'hook':16} {'in-process':>11} {'standalone':>11}")
        for group in BUILTIN:
            if group.startswith("docker") and not docker:
                print(f"{group:16} skipped (no DOCKER_HOST)")
                continue
            ctx = HookContext(work_dir=tmp / group / "w", outputs_dir=tmp / group / "o",
                              capture_dir=tmp / group / "c")
            dep = parse_one(deployment(group, tmp))
            start = time.monotonic()
            result = find(group).run(dep, ctx)
            inproc = time.monotonic() - start
            assert result.status_code == 0, (group, result.stderr)
            module = BUILTIN[group]
            var = "HEAT_" + group.upper().replace("-", "_")
            dirs = {f"{var}_WORKING": str(tmp / group / "sw"), f"{var}_OUTPUTS": str(tmp / group / "so")}
            start = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", module],
                                  input=json.dumps(deployment(group, tmp)).encode(),
                                  capture_output=True, env={**env, **dirs}, check=True)
            standalone = time.monotonic() - start
            assert json.loads(proc.stdout)["deploy_status_code"] == 0, proc.stdout
            print(f"{group:16} {inproc:10.2f}s {standalone:10.2f}s")
            if group.startswith("docker"):
                find(group).run(parse_one(deployment(group, tmp, "DELETE")), ctx)


if __name__ == "__main__":
    main()
