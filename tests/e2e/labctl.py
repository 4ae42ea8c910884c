"""The e2e lab seen from the tests: its settings, and starting and stopping it.

The lab itself (a real Keystone and Heat on 127.0.0.1) is built and run by
the scripts in ``tests/e2e/lab/``; this module calls them and reads the
same ``lab.env`` they do.
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "lab"
DEFAULT_DIR = "/var/tmp/guestagent-heatlab"
# a cold install from the package index takes a few minutes; be generous
SETUP_TIMEOUT = 1200
STOP_TIMEOUT = 120


class LabError(RuntimeError):
    """The lab could not be set up, started or stopped."""


def settings() -> dict[str, str]:
    """The KEY=value pairs of lab.env (ports, region, credentials)."""
    return env_file(SCRIPTS / "lab.env")


def env_file(path: Path) -> dict[str, str]:
    """The KEY=value pairs of a shell env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


@dataclass(frozen=True)
class Lab:
    """Where the lab lives and how to reach it."""

    dir: Path
    env: dict[str, str]

    @property
    def keystone_url(self) -> str:
        """Keystone's v3 root, as Heat hands it to guests."""
        return f"http://{self.env['LAB_HOST']}:{self.env['KEYSTONE_PORT']}/v3"

    @property
    def logs(self) -> Path:
        """Directory of the services' logs (heat.log, keystone.log, ...)."""
        return self.dir / "logs"

    def keystone_logins(self, user_id: str) -> int:
        """How many times Keystone has authenticated ``user_id`` (a token issued to it).

        Keystone logs each successful login as an ``identity.authenticate``
        notification naming the user (keystone.conf.in turns these on).
        """
        count = 0
        with open(self.logs / "keystone.log", errors="replace") as log:
            for line in log:
                if not line.endswith("\n"):
                    break  # Keystone is still writing it
                if " oslo.messaging.notification.identity.authenticate " not in line:
                    continue
                event = json.loads(line[line.index("{"):])["payload"]
                if event.get("outcome") == "success" and \
                        event.get("initiator", {}).get("user_id") == user_id:
                    count += 1
        return count

    def keystone_refusals(self, project_id: str) -> int:
        """How many logins Keystone refused because the project ``project_id`` is gone (Heat
        deletes a stack's project and user with the stack)."""
        needle = f"Could not find project: {project_id}."
        with open(self.logs / "keystone.log", errors="replace") as log:
            return sum(1 for line in log if " WARNING keystone.auth.core " in line
                       and needle in line)

    def heat_requests(self, user_id: str) -> int:
        """How many API requests Heat has served to ``user_id`` (heat.log names the user)."""
        with open(self.logs / "heat.log", errors="replace") as log:
            return sum(1 for line in log
                       if f" {user_id} " in line and " Processing request: " in line)

    def running(self) -> bool:
        """True when all the services run (lab/status.sh decides, from the PID files)."""
        return subprocess.run(["bash", str(SCRIPTS / "status.sh")], capture_output=True,
                              stdin=subprocess.DEVNULL, env=self.script_env(),
                              timeout=30).returncode == 0

    def script_env(self) -> dict[str, str]:
        """The environment for the lab's scripts: this lab's directory."""
        return {**os.environ, "HEATLAB_DIR": str(self.dir)}


def current() -> Lab:
    """The lab chosen by $HEATLAB_DIR (or the default directory)."""
    return Lab(Path(os.environ.get("HEATLAB_DIR", DEFAULT_DIR)).resolve(), settings())


def _run(lab: Lab, script: str, timeout: float) -> None:
    """Run one of the lab's scripts; keep its output in the lab's logs."""
    try:
        result = subprocess.run(["bash", str(SCRIPTS / script)], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, env=lab.script_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabError(f"{script} did not finish in {timeout:.0f} s") from None
    output = result.stdout + result.stderr
    # only once the script made the lab directory: a refused HEATLAB_DIR
    # (inside the git tree) must not be created here either
    if lab.logs.is_dir():
        with open(lab.logs / f"{script}.out", "a") as log:
            log.write(output)
    if result.returncode != 0:
        tail = "".join(output.splitlines(keepends=True)[-25:])
        raise LabError(f"{script} failed with exit status {result.returncode}:\n{tail}")


def ensure_running(lab: Lab) -> bool:
    """Set the lab up and start it, re-using whatever is already there.

    Returns True when this call started the services (so the caller should
    stop them), False when they were running already. Raises LabError.
    """
    was_running = lab.running()
    _run(lab, "setup.sh", SETUP_TIMEOUT)
    return not was_running


def stop(lab: Lab) -> None:
    """Stop the lab's services. Raises LabError."""
    _run(lab, "stop.sh", STOP_TIMEOUT)
