"""What a group of servers costs a real Heat and Keystone: guestagent beside os-collect-config
(run by hand against the e2e lab, never in the test suite).

    HEATLAB_DIR=/var/tmp/guestagent-heatlab .venv/bin/python bench/lab_fleet.py
    .venv/bin/python bench/lab_fleet.py --servers 4 --idle 240 --no-occ

The services' CPU time is read from /proc/<pid>/stat (utime + stime of Heat's process and of
Keystone's gunicorn master and workers), so the lab must serve nothing else meanwhile. The
lab must be running already (tests/e2e/lab/setup.sh); it is left running. A lab of its own
beside the shared one, in a network namespace (same ports, its own loopback), re-using the
shared lab's virtualenvs:

    mkdir /var/tmp/galab && for v in keystone heat; do
        ln -s /var/tmp/guestagent-heatlab/venv-$v /var/tmp/galab/venv-$v; done
    ip netns add galab && ip netns exec galab ip link set lo up
    ip netns exec galab env HEATLAB_DIR=/var/tmp/galab tests/e2e/lab/setup.sh
    ip netns exec galab env HEATLAB_DIR=/var/tmp/galab .venv/bin/python bench/lab_fleet.py

In turn, for guestagent and then os-collect-config, a stack of N servers
(tests/e2e/templates/deployment_group.yaml: OS::Heat::DeployedServer with POLL_SERVER_HEAT
under one SoftwareDeploymentGroup, HEAT_SIGNAL) is created with one agent per server at its
default schedule; once the create's burst has passed, the idle window, then one stack
update (a new input for every server's deployment) and the 35 s after it. Heat's and
Keystone's CPU over each window, less what they spend with no agent at all (measured
first), is given per server-hour (idle) and per server (update), with the Heat API
requests (heat.log) and Keystone logins (keystone.log) of the servers' users.

os-collect-config (bench/.venvs/occ, from the package index) runs the deployments as an
image of the old tools did: its command is the old heat-config runner (the protocol of
heat-agents' 55-heat-config, tests/support/heat_config_driver.py) calling guestagent's
script hook and `guestagent notify` as heat-config-notify.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from agent import venv  # bench/agent.py: the bench virtualenvs

from tests.e2e import guest as by_hand
from tests.e2e import labctl
from tests.e2e.agentguest import AgentGuest
from tests.e2e.heatapi import HeatClient, Stack, StackFactory, group_configs, keystone_login
from tests.support import heat_config_driver

TICK = os.sysconf("SC_CLK_TCK")
BURST = 35.0  # the decaying burst after a signal (1+2+4+8+16 s) runs out within this
SETTLE = 40.0  # after CREATE_COMPLETE: the create's burst is over


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            if ppid == pid:
                found.append(int(entry.name))
    return found


@dataclass
class Services:
    """The lab's Heat and Keystone processes (Keystone: gunicorn's master and workers)."""

    heat: list[int]
    keystone: list[int]

    @classmethod
    def of(cls, lab: labctl.Lab) -> Services:
        def family(name: str) -> list[int]:
            pid = int((lab.dir / "run" / f"{name}.pid").read_text())
            return [pid, *children(pid)]

        return cls(family("heat"), family("keystone"))

    def cpu(self) -> tuple[float, float]:
        return (sum(map(cpu_seconds, self.heat)), sum(map(cpu_seconds, self.keystone)))


@dataclass
class Window:
    """Services' CPU, Heat requests and Keystone logins of some users over a stretch of time."""

    services: Services
    lab: labctl.Lab
    users: list[str]
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = time.monotonic()
        self.cpu0 = self.services.cpu()
        self.req0 = sum(map(self.lab.heat_requests, self.users))
        self.log0 = sum(map(self.lab.keystone_logins, self.users))

    def close(self) -> dict:
        heat, keystone = self.services.cpu()
        return {"seconds": time.monotonic() - self.start, "heat": heat - self.cpu0[0],
                "keystone": keystone - self.cpu0[1],
                "requests": sum(map(self.lab.heat_requests, self.users)) - self.req0,
                "logins": sum(map(self.lab.keystone_logins, self.users)) - self.log0}


def start_guestagent(root: Path, occ: dict) -> tuple[subprocess.Popen, AgentGuest]:
    guest = AgentGuest(root)
    guest.boot(occ)
    return guest.start_daemon(), guest


def start_occ(occ_bin: Path, root: Path, occ: dict) -> tuple[subprocess.Popen, Path]:
    """os-collect-config with the server's boot options; its command the old runner."""
    heat = occ["heat"]
    hooks = root / "hooks"
    hooks.mkdir(parents=True)
    bindir = Path(sys.executable).parent
    (hooks / "script").symlink_to(bindir / "guestagent-hook-script")
    notify = hooks / "heat-config-notify"
    notify.write_text(f"#!/bin/sh\nexec {bindir / 'guestagent'} notify \"$@\"\n")
    notify.chmod(0o755)
    command = f"{sys.executable} {Path(__file__).resolve()} --old-runner {root}"
    argv = [str(occ_bin), "--config-file", "/dev/null", "--cachedir", str(root / "cache"),
            "--backup-cachedir", str(root / "backup"), "--polling-interval", "30",
            "--command", command, "--heat-auth-url", heat["auth_url"],
            "--heat-user-id", heat["user_id"], "--heat-password", heat["password"],
            "--heat-project-id", heat["project_id"], "--heat-stack-id", heat["stack_id"],
            "--heat-resource-name", heat["resource_name"], "heat"]
    with open(root / "occ.log", "wb") as out:  # the child keeps its own copy
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=root), root


def old_runner(root: Path) -> int:
    """os-collect-config's command: the deployments of the metadata it collected, through
    the old heat-config runner's protocol (what os-refresh-config's 55-heat-config did)."""
    deployments = []
    for name in filter(None, os.environ.get("OS_CONFIG_FILES", "").split(":")):
        with open(name) as fh:
            doc = json.load(fh)
        if isinstance(doc, dict) and isinstance(doc.get("deployments"), list):
            deployments = doc["deployments"]
    shell = root / "heat-config.json"
    shell.write_text(json.dumps(deployments))
    heat_config_driver.run({**os.environ, "HEAT_SHELL_CONFIG": str(shell),
                            "HEAT_CONFIG_HOOKS": str(root / "hooks"),
                            "HEAT_CONFIG_NOTIFY": str(root / "hooks" / "heat-config-notify"),
                            "HEAT_CONFIG_DEPLOYED": str(root / "deployed"),
                            "HEAT_SCRIPT_WORKING": str(root / "script-working"),
                            "HEAT_SCRIPT_OUTPUTS": str(root / "script-outputs")})
    return 0


def deploy_users(heat: HeatClient, stack: Stack, configs: list[dict]) -> list[str]:
    """The Keystone users of the servers' deployments (their signals log in as them)."""
    users = []
    for occ in configs:
        ref = occ["heat"]["stack_id"]
        nested = Stack(*ref.split("/"))
        deps = heat.resource_metadata(nested, occ["heat"]["resource_name"])["deployments"]
        users += [by_hand.inputs(d)["deploy_user_id"] for d in deps]
    return users


def run_agent_kind(kind: str, args, heat: HeatClient, stacks: StackFactory, lab: labctl.Lab,
                   services: Services, tmp: Path, occ_bin: Path | None) -> dict:
    """Create, idle, update for one kind of agent; its windows' figures."""
    started = time.monotonic()
    stack = stacks.create("deployment_group.yaml", server=None, count=args.servers,
                          message="one")
    configs = group_configs(heat, stack, args.servers, timeout=120)
    procs = []
    for i, occ in enumerate(configs):
        root = tmp / f"{kind}{i}"
        if kind == "guestagent":
            procs.append(start_guestagent(root, occ)[0])
        else:
            procs.append(start_occ(occ_bin, root, occ)[0])
    try:
        heat.wait_for_status(stack, "CREATE_COMPLETE", timeout=300)
        created = time.monotonic() - started
        users = [c["heat"]["user_id"] for c in configs] + deploy_users(heat, stack, configs)
        time.sleep(SETTLE)  # the create's burst runs out before the idle window opens
        idle = Window(services, lab, users)
        time.sleep(args.idle)  # the measured idle window itself
        idle = idle.close()
        update = Window(services, lab, users)
        heat.update_stack(stack, {"message": "two"})
        outputs = heat.wait_for_status(stack, "UPDATE_COMPLETE", timeout=300)
        updated = time.monotonic() - update.start
        assert outputs["results"] == {str(i): "done: two" for i in range(args.servers)}, outputs
        time.sleep(BURST)  # the measured window: until the burst after the last signal ends
        update = update.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    stacks.delete(stack, timeout=300)
    return {"idle": idle, "update": update, "created": created, "updated": updated}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=4, help="servers per agent (4)")
    parser.add_argument("--idle", type=float, default=240, help="idle window, seconds (240)")
    parser.add_argument("--baseline", type=float, default=60,
                        help="seconds of the services' CPU with no agent at all (60)")
    parser.add_argument("--no-occ", action="store_true", help="guestagent only")
    parser.add_argument("--old-runner", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.old_runner:
        return old_runner(args.old_runner)

    lab = labctl.current()
    if not lab.running():
        parser.error(f"the lab in {lab.dir} is not running (tests/e2e/lab/setup.sh)")
    occ_bin = None if args.no_occ else venv("occ", "os-collect-config") / "bin" / \
        "os-collect-config"
    env = lab.env
    heat = HeatClient(keystone_login(lab.keystone_url, env["DEMO_PASSWORD"],
                                     user_name=env["DEMO_USER"],
                                     project_name=env["DEMO_PROJECT"]), env["REGION"])
    stacks = StackFactory(heat, REPO / "tests" / "e2e" / "templates", "lab-fleet")
    services = Services.of(lab)

    base = Window(services, lab, [])
    time.sleep(args.baseline)  # the services alone: their own periodic work
    base = base.close()
    rate = (base["heat"] / base["seconds"], base["keystone"] / base["seconds"])

    results = {}
    with tempfile.TemporaryDirectory(prefix="ga-labfleet-") as name:
        try:
            for kind in ("guestagent",) + (() if args.no_occ else ("os-collect-config",)):
                results[kind] = run_agent_kind(kind, args, heat, stacks, lab, services,
                                               Path(name), occ_bin)
        finally:
            stacks.delete_all()

    n = args.servers
    print(f"\nlab fleet bench: {n} servers per agent, idle {args.idle:.0f} s, "
          f"{os.cpu_count()} CPUs; services alone: Heat {rate[0] * 3600:.0f} CPU-s/h, "
          f"Keystone {rate[1] * 3600:.0f} CPU-s/h (subtracted)\n")
    print("| measure | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))

    def row(label: str, cell) -> None:
        print(f"| {label} | " + " | ".join(cell(r) for r in results.values()) + " |")

    def net(w: dict, svc: int) -> float:
        return w["heat" if svc == 0 else "keystone"] - rate[svc] * w["seconds"]

    row("idle: Heat CPU-s per server-hour",
        lambda r: f"{net(r['idle'], 0) / n / r['idle']['seconds'] * 3600:.1f}")
    row("idle: Keystone CPU-s per server-hour",
        lambda r: f"{net(r['idle'], 1) / n / r['idle']['seconds'] * 3600:.1f}")
    row("idle: Heat API requests / Keystone logins per server-hour",
        lambda r: f"{r['idle']['requests'] / n / r['idle']['seconds'] * 3600:.0f} / "
                  f"{r['idle']['logins'] / n / r['idle']['seconds'] * 3600:.0f}")
    row(f"update (to UPDATE_COMPLETE + {BURST:.0f} s): Heat + Keystone CPU-s per server",
        lambda r: f"{net(r['update'], 0) / n:.2f} + {net(r['update'], 1) / n:.2f}")
    row("update: Heat API requests / Keystone logins per server",
        lambda r: f"{r['update']['requests'] / n:.1f} / {r['update']['logins'] / n:.1f}")
    row("stack create / update to COMPLETE",
        lambda r: f"{r['created']:.0f} s / {r['updated']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
