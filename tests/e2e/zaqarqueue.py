"""A Zaqar queue as a server's stack user sees it (the credentials of os-collect-config's
``zaqar`` block): its stats, and posting to it the way Heat posts the metadata."""

from __future__ import annotations

import time
import uuid

import requests

from tests.e2e.heatapi import HTTP_TIMEOUT, keystone_login


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
