"""ZAQAR_MESSAGE pushed over Zaqar's websocket API to the agent daemon (issue 13, 2).

The daemon (push is the zaqar source's, wired into the poller)
subscribes to its server's metadata queue as the stack user. Changes are posted
to the queue the way Heat posts them (the whole metadata, one new deployment
each); a deployment's script stamps the time it started. Measured: post ->
hook start. Then the real zaqar websocket process is stopped and started: the
agent falls back to polling, reconnects, and runs every deployment once.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.agentguest import AgentGuest, Timings
from tests.e2e.heatapi import HeatClient, StackFactory
from tests.e2e.swiftzaqar import SwiftZaqar
from tests.e2e.zaqarqueue import Pusher, Queue
from tests.support.agent import REPO, _env, agent_argv
from tests.support.wait import wait_until

SAMPLES = int(os.environ.get("GUESTAGENT_E2E_PUSH_SAMPLES", "10"))
# median seconds: the goal is 100 ms; with 9 test suites sharing 2 cores the measured
# median moves between 60 and 180 ms, so CI asserts with room and prints the figure
TARGET = float(os.environ.get("GUESTAGENT_E2E_PUSH_TARGET", "0.25"))
# On disk, as a guest keeps it: only the deployment's own records are synced before its hook
# (3 syncs); bench/push.py reports tmpfs, disk and a busy disk side by side.
STATE_ON = os.environ.get("GUESTAGENT_E2E_PUSH_STATE_ON", "/var/tmp")
POLLING_INTERVAL = 10.0
IDLE_SECONDS = 25.0


def claims(services: SwiftZaqar, queue: str) -> int:
    """Claims on ``queue`` served so far (Zaqar's wsgi access lines)."""
    log = services.dir / "logs" / "zaqar-wsgi.out"
    return sum(1 for line in log.read_text(errors="replace").splitlines()
               if f"/queues/{queue}/claims" in line and "POST" in line)


def daemon_log(guest: AgentGuest) -> str:
    return (guest.root / "daemon.log").read_text(errors="replace")


@pytest.fixture
def push_guest() -> Iterator[AgentGuest]:
    """A guest whose state directory is on STATE_ON (the disk by default)."""
    root = Path(tempfile.mkdtemp(prefix="guestagent-push-", dir=STATE_ON))
    yield AgentGuest(root / "guest")
    shutil.rmtree(root, ignore_errors=True)


def test_push_runs_changes_at_once_and_survives_zaqar_restarts(
        heat: HeatClient, swift_zaqar: SwiftZaqar, stacks: StackFactory, push_guest: AgentGuest,
        timings: Timings) -> None:
    guest = push_guest
    stack = stacks.create(software_config_transport="ZAQAR_MESSAGE",
                          signal_transport="ZAQAR_SIGNAL", message="pushed")
    guest.boot(stack.os_collect_config)
    argv = agent_argv(guest.state_dir, *guest.args("--polling-interval", str(POLLING_INTERVAL)))
    with open(guest.root / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_env(None),
                                  cwd=REPO)
    try:
        heat.wait_for_status(stack, "CREATE_COMPLETE")
        wait_until(lambda: daemon_log(guest).count("subscribed to queue") == 1, timeout=30,
                   what="the websocket subscription")
        queue = Queue(stack.os_collect_config["zaqar"])
        pusher = Pusher(heat, stack, queue, guest.root / "stamps")

        # push: post -> hook start
        latencies = []
        for i in range(SAMPLES):
            name = f"push-{i}"
            posted = pusher.change(name)
            latencies.append(pusher.wait_run(name, timeout=10) - posted)
            wait_until(lambda: queue.stats()["total"] == 0, timeout=10,
                       what="the agent to release the snapshot it ran")
        median = statistics.median(latencies)
        print(f"push: post -> hook start, {SAMPLES} samples: median {median * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")
        timings.figures.append(("push: post -> hook start, median", median))
        assert median <= TARGET, latencies

        # idle: one safety poll per polling_interval, not the fast-poll window's one a second
        before = claims(swift_zaqar, queue.name)
        time.sleep(IDLE_SECONDS)  # the measured idle window itself, not a wait for something
        idle_claims = claims(swift_zaqar, queue.name) - before
        print(f"idle {IDLE_SECONDS:.0f} s while subscribed: {idle_claims} claims")
        assert idle_claims <= IDLE_SECONDS / POLLING_INTERVAL + 1

        # the websocket process goes away: the agent polls at once and keeps polling
        swift_zaqar.stop("zaqar-ws")
        wait_until(lambda: "connection lost" in daemon_log(guest), timeout=10,
                   what="the agent to notice the lost connection")
        posted = pusher.change("while-down")
        by_poll = pusher.wait_run("while-down", timeout=POLLING_INTERVAL + 10) - posted
        print(f"websocket down: change ran by polling after {by_poll:.1f} s")

        # back: it reconnects (backoff) and is pushed to again
        restarted = time.monotonic()
        swift_zaqar.start("zaqar-ws")
        wait_until(lambda: daemon_log(guest).count("subscribed to queue") == 2, timeout=60,
                   what="the agent to subscribe again")
        print(f"resubscribed {time.monotonic() - restarted:.1f} s after the restart began")
        wait_until(lambda: queue.stats()["total"] == 0, timeout=10, what="a quiet queue")
        posted = pusher.change("after-restart")
        after = pusher.wait_run("after-restart", timeout=10) - posted
        print(f"after the restart: post -> hook start {after * 1000:.0f} ms")
        assert after <= 1.0

        # a crash (SIGKILL, no close frame) of the websocket process, then a change at once
        pid = swift_zaqar.pid("zaqar-ws")
        os.kill(pid, 9)
        posted = pusher.change("at-crash")
        pusher.wait_run("at-crash", timeout=POLLING_INTERVAL + 10)
        swift_zaqar.start("zaqar-ws")
        wait_until(lambda: daemon_log(guest).count("subscribed to queue") == 3, timeout=60,
                   what="the agent to subscribe after the crash")

        # Heat's own post (a stack update) reaches the subscribed daemon as well
        started = time.monotonic()
        heat.update_stack(stack, {"message": "pushed update"})
        assert heat.wait_for_status(stack, "UPDATE_COMPLETE")["result"] == "done: pushed update"
        timings.record("push daemon: stack update (to UPDATE_COMPLETE)", started)

        # nothing lost, nothing run twice (started() raises on a second run)
        names = [d["name"] for d in pusher.added]
        assert sorted(pusher.started()) == sorted(names)
        journal = {e.name: e for e in guest.journal()}
        assert all(journal[n].attempts == 1 for n in names)
        assert daemon.poll() is None
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        if swift_zaqar.pid("zaqar-ws") is None or not swift_zaqar.running():
            swift_zaqar.start("zaqar-ws")
    assert "Traceback" not in daemon_log(guest), daemon_log(guest)[-3000:]
