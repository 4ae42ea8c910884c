"""The real agent as the guest of a real Heat stack (the scenarios of test_agent_*.py).

A guest booted by Heat finds its boot metadata (user_data's cfn-init-data)
in the heat_local file; for a DeployedServer that metadata is the server's
``os_collect_config`` attribute under the ``os-collect-config`` key. This
module writes exactly that file and nothing else, then runs ``guestagent``
as a separate process (``--once`` or the daemon) with ``heat_local`` as its
only configured source: it must switch the heat or cfn source on itself,
from the credentials in that file.
"""

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from guestagent.journal import Journal, JournalEntry
from guestagent.state import StateDir, write_json
from tests.e2e.heatapi import HeatClient, Stack, poll
from tests.support.agent import run_agent, start_agent

# each config transport with the signal transport of its own kind
PAIRS = [("POLL_SERVER_HEAT", "HEAT_SIGNAL"), ("POLL_SERVER_CFN", "CFN_SIGNAL"),
         ("POLL_TEMP_URL", "TEMP_URL_SIGNAL"), ("ZAQAR_MESSAGE", "ZAQAR_SIGNAL")]


def script_outputs(message: str) -> dict:
    """The outputs Heat should show for a deployment of ``message`` that succeeded."""
    return {"result": f"done: {message}", "deploy_stdout": f"message: {message}\n",
            "deploy_stderr": "to stderr\n", "deploy_status_code": 0}


@dataclass
class AgentGuest:
    """One guest: a heat_local file, a state directory, and the agent run over them."""

    root: Path

    def __post_init__(self) -> None:
        self.runs: list[subprocess.CompletedProcess] = []  # every --once run, oldest first

    @property
    def boot_file(self) -> Path:
        """The heat_local file (``/var/lib/heat-cfntools/cfn-init-data`` on a real guest)."""
        return self.root / "cfn-init-data"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def boot(self, os_collect_config: dict) -> None:
        """Write the boot metadata Heat gives the server: only its os-collect-config key."""
        self.root.mkdir(parents=True, exist_ok=True)
        # --local-path names it: a path given on the command line must exist (exit 2 if not)
        (self.root / "local-data").mkdir(mode=0o755, exist_ok=True)
        write_json(self.boot_file, {"os-collect-config": os_collect_config})

    def args(self, *extra: str) -> list[str]:
        """The agent's options: heat_local is the one source it is told about."""
        return ["--collectors", "heat_local", "--heat-local-path", str(self.boot_file),
                # the local source the metadata names reads this empty directory, not /var/lib
                "--local-path", str(self.root / "local-data"), *extra]

    def once(self) -> subprocess.CompletedProcess:
        """``guestagent --once``; exit status 2 (bad configuration or usage) fails the test."""
        done = run_agent(self.state_dir, *self.args())
        assert done.returncode in (0, 1), f"guestagent --once: {done.returncode}\n{done.stderr}"
        self.runs.append(done)
        return done

    def run_until(self, what: str, condition: Callable[[], bool], timeout: float = 90) -> None:
        """Run ``--once`` passes (as a guest's timer would) until ``condition`` holds."""
        def probe() -> bool | None:
            self.once()
            return True if condition() else None

        poll(what, probe, timeout)

    def start_daemon(self, *extra: str) -> subprocess.Popen:
        """The agent as a daemon; its log goes to ``daemon.log`` in the guest's directory."""
        return start_agent(self.state_dir, *self.args(*extra), log=self.root / "daemon.log")

    def journal(self) -> list[JournalEntry]:
        """The agent's journal, oldest deployment first (read fresh from disk)."""
        if not (self.state_dir / "deployments").is_dir():
            return []
        return sorted(Journal(StateDir(self.state_dir)), key=lambda e: e.received_at)

    def entry(self, action: str) -> JournalEntry | None:
        """The newest journal entry for a deployment run for ``action``."""
        found = [e for e in self.journal() if e.action == action]
        return found[-1] if found else None

    def response(self, entry: JournalEntry) -> dict | None:
        """What the hook returned for a deployment (kept by the agent, 0600)."""
        return StateDir(self.state_dir).load_response(entry.key)

    def source_document(self, name: str) -> dict | None:
        """The last good copy the agent holds of one source (heat, cfn, heat_local)."""
        cache = StateDir(self.state_dir).load_source(name)
        return cache.document if cache else None


def wait_done(guest: AgentGuest, action: str, timeout: float = 90) -> JournalEntry:
    """Run the agent until a deployment for ``action`` is finished and signalled (or not needed)."""
    def signalled() -> bool:
        entry = guest.entry(action)
        # signalled, and maybe "gone" since (the deletion took it out of the metadata)
        return entry is not None and entry.signalled_at is not None

    guest.run_until(f"{action} deployment signalled by the agent", signalled, timeout)
    entry = guest.entry(action)
    assert entry is not None
    return entry


def stack_left(heat: HeatClient, stack: Stack, status: str) -> Callable[[], bool]:
    """A condition: the stack is no longer ``status`` (e.g. CREATE_IN_PROGRESS)."""
    return lambda: heat.show(stack)["stack_status"] != status


class Timings:
    """Seconds from a stack operation to its end, per scenario, for the session's summary."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.figures: list[tuple[str, float]] = []

    def record(self, scenario: str, started: float) -> float:
        """Record ``time.monotonic() - started`` for ``scenario``; return it."""
        took = time.monotonic() - started
        self.figures.append((scenario, took))
        with open(self.log, "a") as out:
            out.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                  "scenario": scenario, "seconds": round(took, 2)}) + "\n")
        return took
