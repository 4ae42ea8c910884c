"""What the Swift and Zaqar sources owe the cloud, checked against the real services (issue 13, 1).

- POLL_TEMP_URL: the agent's polls are conditional; once it holds the metadata, real Swift
  answers its GETs 304 (Swift's proxy log names each request and its status).
- ZAQAR_MESSAGE: the queue stays usable by Heat; the newest snapshot is held (claimed, not
  deleted) while its deployment runs, and let go once it ran.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import requests

from guestagent.state import StateDir
from tests.e2e.agentguest import AgentGuest, stack_left
from tests.e2e.heatapi import HeatClient, StackFactory
from tests.e2e.swiftzaqar import SwiftZaqar
from tests.e2e.zaqarqueue import Queue
from tests.support.wait import wait_until


def swift_statuses(services: SwiftZaqar, object_path: str) -> list[int]:
    """Statuses of the GETs of ``object_path`` in Swift's proxy log, oldest first."""
    log = (services.dir / "logs" / "swift-proxy.out").read_text(errors="replace")
    found = []
    for line in log.splitlines():
        match = re.search(r" GET (\S+) HTTP/\S+ (\d{3}) ", line)
        if match and unquote(match.group(1)).split("?")[0] == object_path:
            found.append(int(match.group(2)))
    return found


def test_temp_url_polls_are_answered_304_by_swift(heat: HeatClient, swift_zaqar: SwiftZaqar,
                                                   stacks: StackFactory,
                                                   guest: AgentGuest) -> None:
    stack = stacks.create(software_config_transport="POLL_TEMP_URL",
                          signal_transport="TEMP_URL_SIGNAL", message="etag")
    url = stack.os_collect_config["request"]["metadata_url"]
    guest.boot(stack.os_collect_config)
    guest.run_until("the stack's create to end", stack_left(heat, stack, "CREATE_IN_PROGRESS"))
    heat.wait_for_status(stack, "CREATE_COMPLETE", timeout=10)

    # the agent keeps Swift's validator ...
    etag = requests.head(url, timeout=30).headers["ETag"]
    cached = StateDir(guest.state_dir).load_source("request")
    assert cached is not None and cached.etag == etag
    # ... and Swift answers a GET that carries it with 304
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=30).status_code == 304

    path = urlsplit(url).path
    before = len(swift_statuses(swift_zaqar, path))
    guest.once()
    guest.once()
    polls = swift_statuses(swift_zaqar, path)
    assert polls[0] == 200  # the first poll fetched the document
    assert polls[before:] == [304, 304], polls  # the agent's later polls: unchanged, 304


def test_zaqar_snapshot_is_held_while_its_deployment_runs(heat: HeatClient,
                                                         swift_zaqar: SwiftZaqar,
                                                         stacks: StackFactory,
                                                         guest: AgentGuest) -> None:
    gate = guest.root / "gate"
    stack = stacks.create(software_config_transport="ZAQAR_MESSAGE",
                          signal_transport="ZAQAR_SIGNAL", message="held", gate=str(gate))
    guest.boot(stack.os_collect_config)
    queue = Queue(stack.os_collect_config["zaqar"])
    wait_until(lambda: queue.stats()["free"] >= 1, timeout=30, what="Heat's metadata post")

    # the daemon (Heat may post a snapshot without the deployment first), held inside the
    # deployment's script until the gate opens
    daemon = guest.start_daemon()
    try:
        wait_until(lambda: getattr(guest.entry("CREATE"), "state", None) == "running",
                   timeout=30, what="the deployment to start")
        held = queue.stats()
        # the newest snapshot is claimed by the agent, not deleted; nothing else is left over
        assert held["claimed"] == 1 and held["total"] == 1, held
        gate.touch()
        wait_until(lambda: getattr(guest.entry("CREATE"), "state", None) == "signalled",
                   timeout=30, what="the deployment to finish")
        heat.wait_for_status(stack, "CREATE_COMPLETE")
        # let go once its deployment ran
        wait_until(lambda: queue.stats()["total"] == 0, timeout=10, what="the release")

        # the queue still serves Heat: an update's snapshot reaches the agent through it
        heat.update_stack(stack, {"message": "again"})
        assert heat.wait_for_status(stack, "UPDATE_COMPLETE")["result"] == "done: again"
    finally:
        gate.touch()
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
