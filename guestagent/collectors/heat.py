"""`heat` (POLL_SERVER_HEAT): the server's metadata from the Heat API, logged in with Keystone v3.

The token is kept across polls (guestagent.keystone) until it nears expiry or a 401 comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from guestagent import keystone
from guestagent.collectors.base import Collected, Collector
from guestagent.collectors.openstack import credentials, login_failure
from guestagent.collectors.replies import MAX_BODY, describe, json_reply
from guestagent.errors import (
    KeystoneError,
    SourceGone,
    SourceNotConfigured,
    SourceUnavailable,
    TransportError,
)


@dataclass
class Heat(Collector):
    creds: keystone.Credentials
    stack_id: str
    resource_name: str
    name: str = "heat"

    def collect(self, previous=None) -> Collected:
        """GET <orchestration>/stacks/<stack_id>/resources/<resource_name>/metadata."""
        try:
            ks = keystone.client(self.creds)
            url = (f"{ks.endpoint('orchestration')}/stacks/{_path(self.stack_id)}"
                   f"/resources/{quote(self.resource_name, safe='')}/metadata")
            resp = ks.request("GET", url, headers={"Accept": "application/json"},
                              max_body=MAX_BODY)
        except KeystoneError as exc:
            raise login_failure(self.name, exc) from exc
        except TransportError as exc:
            raise SourceUnavailable(self.name, f"Heat API unreachable: {exc}") from exc
        if resp.status_code == 404:
            # The stack or the server's resource was deleted: polled again only after the
            # longest backoff, and reported once.
            raise SourceGone(self.name, f"{describe('GET', url)}: HTTP 404 (the stack or its "
                                        f"resource {self.resource_name} was deleted)")
        body = json_reply(self.name, describe("GET", url), resp)
        metadata = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(metadata, dict):
            raise SourceUnavailable(self.name, f"{describe('GET', url)}: reply has no "
                                               "\"metadata\" object")
        return Collected(metadata)


def _path(stack_id: str) -> str:
    # stack_id is "<name>/<uuid>": keep the slash, escape the rest.
    return "/".join(quote(part, safe="") for part in stack_id.split("/"))


def build(options: dict) -> Heat:
    creds = credentials("heat", options, extra=("stack_id", "resource_name"))
    stack_id = str(options["stack_id"])
    if stack_id.count("/") != 1:
        raise SourceNotConfigured(f"heat: stack_id must be <stack name>/<stack id>, not {stack_id!r}")
    return Heat(creds, stack_id, str(options["resource_name"]))
