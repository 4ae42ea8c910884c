"""Push latency beside poll latency for the zaqar source (ZAQAR_MESSAGE), against real Zaqar.

Needs the e2e lab with Swift and Zaqar running (tests/e2e/lab/setup.sh, then
tests/e2e/lab/swiftzaqar/sz.sh setup); without them it says so and measures
nothing (there is no websocket in the fake cloud). One stack, one agent daemon
at a time as its guest; each change is a post of the server's metadata plus a
deployment whose script stamps its start, made at a random moment:

- push: the daemon with the zaqar source's websocket push, its state directory on
  tmpfs, on disk, and on disk while another process keeps the disk busy (writing a
  file without pause, buffered, as a package install or an image pull does: each fsync
  the agent makes before a hook then waits behind the kernel's writeback), and that
  with every core kept busy by a spinning process too (a loaded machine);
- poll: today's daemon (no push), polling_interval 5 s, no fast-poll window.

usage: python3 bench/push.py [--samples N]   (from the project root, in .venv)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import labctl, swiftzaqar
from tests.e2e.agentguest import AgentGuest
from tests.e2e.heatapi import HeatClient, StackFactory, keystone_login
from tests.e2e.zaqarqueue import Pusher, Queue
from tests.support.agent import _env, agent_argv
from tests.support.wait import wait_until

POLL_INTERVAL = 5.0
CORES = os.cpu_count() or 1


def heat_client(lab: labctl.Lab) -> HeatClient:
    env = lab.env
    login = keystone_login(lab.keystone_url, env["DEMO_PASSWORD"], user_name=env["DEMO_USER"],
                           project_name=env["DEMO_PROJECT"])
    return HeatClient(login, env["REGION"])


def measure(heat: HeatClient, stacks: StackFactory, where: Path, push: bool, samples: int,
            spread: float) -> list[float]:
    """Seconds from post to hook start for ``samples`` changes, each at a random moment."""
    stack = stacks.create(software_config_transport="ZAQAR_MESSAGE",
                          signal_transport="NO_SIGNAL", message="bench")
    root = Path(tempfile.mkdtemp(prefix="guestagent-bench-", dir=where))
    guest = AgentGuest(root / "guest")
    guest.boot(stack.os_collect_config)
    config = root / "agent.yaml"
    # The quiet-spell case: no fast-poll window; the poll case turns push off.
    config.write_text("fast_poll_period: 0\n" + ("" if push else
                                                  "zaqar:\n  use_websockets: false\n"))
    argv = agent_argv(guest.state_dir, *guest.args("--polling-interval", str(POLL_INTERVAL)),
                      config=config)
    log = open(root / "daemon.log", "wb")
    daemon = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_env(None), cwd=ROOT)
    try:
        heat.wait_for_status(stack, "CREATE_COMPLETE")
        if push:
            wait_until(lambda: "subscribed to queue" in (root / "daemon.log").read_text(),
                       timeout=30, what="the subscription")
        queue = Queue(stack.os_collect_config["zaqar"])
        pusher = Pusher(heat, stack, queue, root / "stamps")
        found = []
        for i in range(samples):
            time.sleep(random.uniform(0, spread))  # a change at a random phase of the schedule
            posted = pusher.change(f"bench-{i}")
            found.append(pusher.wait_run(f"bench-{i}", timeout=POLL_INTERVAL * 3) - posted)
            wait_until(lambda: queue.stats()["total"] == 0, timeout=30, what="a quiet queue")
        return found
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
        stacks.delete(stack)


# Writes 1 GiB, buffered, over and over: the kernel's writeback never rests.
WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
block = os.urandom(1 << 20)
while True:
    for i in range(1024):
        os.pwrite(fd, block, i << 20)
"""


@contextlib.contextmanager
def busy(where: Path, spinners: int = 0):
    """Another process writing on the file system of `where` meanwhile, and `spinners`
    processes each keeping a core busy."""
    path = Path(tempfile.mkdtemp(prefix="guestagent-bench-busy-", dir=where)) / "block"
    others = [subprocess.Popen([sys.executable, "-c", WRITER, str(path)])]
    others += [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(spinners)]
    try:
        yield
    finally:
        for other in others:
            other.kill()
            other.wait()
        shutil.rmtree(path.parent, ignore_errors=True)


def busy_measure(heat: HeatClient, stacks: StackFactory, samples: int,
                 spinners: int = 0) -> list[float]:
    with busy(Path("/var/tmp"), spinners):
        return measure(heat, stacks, Path("/var/tmp"), True, samples, 0.5)


def line(label: str, found: list[float]) -> str:
    return (f"| {label} | {statistics.median(found) * 1000:.0f} ms | "
            f"{min(found) * 1000:.0f}-{max(found) * 1000:.0f} ms | {len(found)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    lab = labctl.current()
    services = swiftzaqar.current(lab)
    if not lab.running() or not services.running():
        print("real Keystone/Heat/Zaqar not running (tests/e2e/lab/setup.sh, "
              "tests/e2e/lab/swiftzaqar/sz.sh setup): push not measured")
        return 1
    print(f"against real Zaqar at {services.zaqar_url} (websocket {services.websocket_url})")
    heat = heat_client(lab)
    stacks = StackFactory(heat, ROOT / "tests" / "e2e" / "templates", "bench")
    try:
        rows = [
            line("push, state on tmpfs", measure(heat, stacks, Path("/dev/shm"), True,
                                                 args.samples, 0.5)),
            line("push, state on disk", measure(heat, stacks, Path("/var/tmp"), True,
                                                args.samples, 0.5)),
            line("push, state on disk, the disk busy", busy_measure(heat, stacks,
                                                                    args.samples)),
            line(f"push, state on disk, the disk and {CORES} cores busy",
                 busy_measure(heat, stacks, args.samples, spinners=CORES)),
            line(f"poll every {POLL_INTERVAL:.0f} s (no push), state on disk",
                 measure(heat, stacks, Path("/var/tmp"), False, max(4, args.samples // 3),
                         POLL_INTERVAL)),
        ]
    finally:
        stacks.delete_all()
    print("| zaqar source: post -> hook start | median | range | changes |")
    print("|---|---|---|---|")
    for row in rows:
        print(row)
    rss = services.rss_kib()
    swift = sum(size for name, size in rss.items() if name.startswith("swift")) // 1024
    zaqar = (rss.get("zaqar-wsgi", 0) + rss.get("zaqar-ws", 0)) // 1024
    print(f"service memory (RSS): Swift {swift} MiB (4 processes), Zaqar {zaqar} MiB "
          f"(2 processes) + redis {rss.get('redis', 0) // 1024} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
