"""A Zaqar queue as a server's stack user sees it (the credentials of os-collect-config's
``zaqar`` block): its stats, and posting to it the way Heat posts the metadata; `Pusher`
posts changes whose scripts stamp when they start (push latency, tests and bench)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import requests

from tests.e2e.heatapi import HTTP_TIMEOUT, HeatClient, Stack, keystone_login
from tests.support.wait import wait_until


class Queue:
    """One queue, through the catalog's messaging endpoint, as the user of ``zaqar_options``."""

    def __init__(self, zaqar_options: dict) -> None:
        login = keystone_login(zaqar_options["auth_url"], zaqar_options["password"],
                               user_id=zaqar_options["user_id"],
                               project_id=zaqar_options["project_id"])
        self.name = zaqar_options["queue_id"]
        self.url = f"{login.endpoint('messaging').rstrip('/')}/v2/queues/{self.name}"
        self.http = requests.Session()
        self.http.headers.update({"X-Auth-Token": login.token, "Client-ID": str(uuid.uuid4()),
                                  "X-Project-ID": zaqar_options["project_id"]})

    def stats(self) -> dict:
        """{"claimed": n, "free": n, "total": n}"""
        reply = self.http.get(f"{self.url}/stats", timeout=HTTP_TIMEOUT)
        reply.raise_for_status()
        return reply.json()["messages"]

    def post(self, body: dict) -> float:
        """Post one message; returns the wall-clock time just before it was sent."""
        started = time.time()
        reply = self.http.post(f"{self.url}/messages", timeout=HTTP_TIMEOUT,
                               json={"messages": [{"ttl": 3600, "body": body}]})
        reply.raise_for_status()
        return started


def stamped_deployment(name: str, stamps: Path) -> dict:
    """A deployment whose script appends its start time (and its name) to ``stamps``."""
    return {"id": str(uuid.uuid4()), "name": name, "group": "script", "options": {},
            "inputs": [{"name": "deploy_signal_transport", "value": "NO_SIGNAL"}],
            "outputs": [],
            "config": f"#!/bin/sh\necho \"$(date +%s.%N) {name}\" >> {stamps}\n"}


class Pusher:
    """Posts Heat's current metadata plus one new deployment at a time, as Heat would."""

    def __init__(self, heat: HeatClient, stack: Stack, queue: Queue, stamps: Path) -> None:
        self.base = heat.resource_metadata(stack, "server")
        self.queue, self.stamps = queue, stamps
        self.added: list[dict] = []

    def change(self, name: str) -> float:
        """Post a new snapshot with deployment ``name``; the time of the post."""
        self.added.append(stamped_deployment(name, self.stamps))
        body = dict(self.base, deployments=self.base["deployments"] + self.added)
        return self.queue.post(body)

    def started(self) -> dict[str, float]:
        """name -> when its script started, from the stamps so far."""
        if not self.stamps.exists():
            return {}
        found = {}
        for line in self.stamps.read_text().splitlines():
            stamp, name = line.split(" ", 1)
            assert name not in found, f"deployment {name} ran twice"
            found[name] = float(stamp)
        return found

    def wait_run(self, name: str, timeout: float) -> float:
        """Seconds from ``name``'s post to its script's start."""
        wait_until(lambda: name in self.started(), timeout=timeout, what=f"deployment {name}")
        return self.started()[name]
