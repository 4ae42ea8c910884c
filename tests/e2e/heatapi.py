"""A small Keystone + Heat REST client for the e2e tests (``requests`` only).

It logs in to Keystone v3, finds Heat in the catalog, and does what the
tests need of the orchestration API: create, show, update and delete
stacks, wait for a status, and read outputs, resource metadata and
resource attributes. No ``openstack`` CLI: each of its calls costs more
start-up time than a whole scenario's REST calls.
"""

import itertools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import requests

HTTP_TIMEOUT = 30
POLL_INTERVAL = 0.5
T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition a test waited for did not come true in time."""


class StackFailed(AssertionError):
    """A stack ended in another state than the one a test waited for."""


def poll(what: str, probe: Callable[[], T | None], timeout: float,
         interval: float = POLL_INTERVAL) -> T:
    """Call ``probe`` until it returns something other than None; return that.

    Raises WaitTimeout naming ``what`` (and the probe's last error, if it
    raised one) when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value is not None:
                return value
        except (requests.RequestException, KeyError, ValueError) as error:
            last_error = error  # not there yet; keep trying until the deadline
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeout(f"no {what} within {timeout:.0f} s{detail}")
        time.sleep(interval)


def _not_found(error: requests.HTTPError) -> bool:
    return error.response is not None and error.response.status_code == 404


@dataclass
class Login:
    """A Keystone v3 token with the catalog that came with it."""

    token: str
    body: dict = field(repr=False)

    def endpoint(self, service_type: str, region: str | None = None,
                 interface: str = "public") -> str:
        """The URL of ``service_type`` in the catalog (SPEC 2.4's lookup)."""
        for service in self.body.get("catalog", []):
            if service["type"] != service_type:
                continue
            for endpoint in service["endpoints"]:
                if endpoint["interface"] == interface and region in (None, endpoint.get("region_id")):
                    return endpoint["url"]
        raise LookupError(f"no {interface} {service_type} endpoint in the catalog")


def keystone_login(auth_url: str, password: str, *, user_id: str | None = None,
                   user_name: str | None = None, user_domain: str = "default",
                   project_id: str | None = None, project_name: str | None = None,
                   project_domain: str = "default") -> Login:
    """Password login to Keystone v3, scoped to a project.

    Give the user by id, or by name (in ``user_domain``, an id); likewise
    the project. ``auth_url`` may end in /v3 or not.
    """
    user = {"id": user_id} if user_id else {"name": user_name, "domain": {"id": user_domain}}
    project = ({"id": project_id} if project_id
               else {"name": project_name, "domain": {"id": project_domain}})
    body = {"auth": {"identity": {"methods": ["password"],
                                  "password": {"user": {**user, "password": password}}},
                     "scope": {"project": project}}}
    url = auth_url.rstrip("/")
    if not url.endswith("/v3"):
        url += "/v3"
    reply = requests.post(f"{url}/auth/tokens", json=body, timeout=HTTP_TIMEOUT)
    reply.raise_for_status()
    return Login(reply.headers["X-Subject-Token"], reply.json()["token"])


@dataclass(frozen=True)
class Stack:
    """A stack the tests made; ``ref`` is the ``name/id`` path Heat wants.

    ``os_collect_config`` is the server's attribute of that name when the
    stack came from StackFactory.create (what an agent is configured with).
    """

    name: str
    id: str
    os_collect_config: dict = field(default_factory=dict, compare=False)

    @property
    def ref(self) -> str:
        """``<name>/<id>``: the form of the API paths and of deploy_stack_id."""
        return f"{self.name}/{self.id}"


class HeatClient:
    """Heat's orchestration API as one Keystone user of one project."""

    def __init__(self, login: Login, region: str | None = None) -> None:
        self.url = login.endpoint("orchestration", region)
        self.http = requests.Session()
        self.http.headers.update({"X-Auth-Token": login.token, "Accept": "application/json"})

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        reply = self.http.request(method, f"{self.url}/{path}", timeout=HTTP_TIMEOUT, **kwargs)
        if not reply.ok:
            raise requests.HTTPError(f"{method} {path}: {reply.status_code} {reply.text[:500]}",
                                     response=reply)
        return reply

    def create_stack(self, name: str, template: str, parameters: dict[str, Any]) -> Stack:
        """Start creating a stack; returns at once (the stack is IN_PROGRESS)."""
        body = {"stack_name": name, "template": template, "parameters": parameters,
                "disable_rollback": True}
        return Stack(name, self._call("POST", "stacks", json=body).json()["stack"]["id"])

    def show(self, stack: Stack) -> dict:
        """The stack's body: stack_status, stack_status_reason, outputs, ..."""
        return self._call("GET", f"stacks/{stack.ref}").json()["stack"]

    def wait_for_status(self, stack: Stack, status: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the stack's status is ``status``; return its outputs.

        Fails at once (StackFailed) when the same action ends otherwise,
        e.g. CREATE_FAILED while waiting for CREATE_COMPLETE. The status of
        an earlier action (CREATE_COMPLETE right after an update request)
        is waited out.
        """
        action = status.rsplit("_", 1)[0]
        ends = {f"{action}_COMPLETE", f"{action}_FAILED"}

        def probe() -> dict | None:
            body = self.show(stack)
            if body["stack_status"] == status:
                return body
            if body["stack_status"] in ends:
                raise StackFailed(f"{stack.name}: {body['stack_status']} while waiting for "
                                  f"{status}: {body['stack_status_reason']}")
            return None

        body = poll(f"{status} of stack {stack.name}", probe, timeout)
        return {out["output_key"]: out.get("output_value") for out in body.get("outputs", [])}

    def update_stack(self, stack: Stack, parameters: dict[str, Any]) -> None:
        """Start an update that keeps the template and changes ``parameters``."""
        self._call("PATCH", f"stacks/{stack.ref}", json={"parameters": parameters})

    def delete_stack(self, stack: Stack, timeout: float = 120) -> None:
        """Delete the stack and wait until Heat no longer lists it (gone already: fine)."""
        try:
            self._call("DELETE", f"stacks/{stack.ref}")
        except requests.HTTPError as error:
            if not _not_found(error):
                raise
            return

        def gone() -> bool | None:
            try:
                body = self.show(stack)
            except requests.HTTPError as error:
                if _not_found(error):
                    return True
                raise
            if body["stack_status"] == "DELETE_FAILED":
                raise StackFailed(f"{stack.name}: DELETE_FAILED: {body['stack_status_reason']}")
            return True if body["stack_status"] == "DELETE_COMPLETE" else None

        poll(f"deletion of stack {stack.name}", gone, timeout)

    def resource_metadata(self, stack: Stack, resource: str) -> dict:
        """A resource's metadata as Heat's API shows it to the stack's owner."""
        return self._call("GET", f"stacks/{stack.ref}/resources/{resource}/metadata").json()["metadata"]

    def resource_attribute(self, stack: Stack, resource: str, attribute: str) -> Any:
        """One attribute of a resource (``with_attr``), None while unresolved."""
        reply = self._call("GET", f"stacks/{stack.ref}/resources/{resource}",
                           params={"with_attr": attribute})
        return reply.json()["resource"]["attributes"].get(attribute)

    def os_collect_config(self, stack: Stack, server: str = "server", timeout: float = 60) -> dict:
        """The server's ``os_collect_config`` attribute, once Heat has filled it in."""
        def probe() -> dict | None:
            value = self.resource_attribute(stack, server, "os_collect_config")
            return value if value and value.get("collectors") else None

        return poll(f"os_collect_config of {stack.name}/{server}", probe, timeout)


class StackFactory:
    """Creates stacks from tests/e2e/templates and deletes them afterwards."""

    def __init__(self, heat: HeatClient, templates: Path, prefix: str) -> None:
        self.heat = heat
        self.templates = templates
        # Heat wants names that start with a letter: [A-Za-z][A-Za-z0-9_.-]*; and short ones:
        # ZAQAR_SIGNAL's queue is named "<stack>-deployment-<12 chars>", at most 64 for Zaqar
        self.prefix = "e2e-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix)[:24]
        self.run = uuid.uuid4().hex[:6]
        self.count = itertools.count(1)
        self.live: list[Stack] = []

    def create(self, template: str = "deployed_server.yaml", server: str | None = "server",
               timeout: float = 60, **parameters: Any) -> Stack:
        """Create a stack (left IN_PROGRESS) and return it.

        With a ``server`` resource name (the default), wait until that
        server's os_collect_config is filled in and return it with the stack.
        """
        name = f"{self.prefix}-{self.run}-{next(self.count)}"
        stack = self.heat.create_stack(name, (self.templates / template).read_text(), parameters)
        self.live.append(stack)
        if server is None:
            return stack
        return replace(stack, os_collect_config=self.heat.os_collect_config(stack, server, timeout))

    def delete(self, stack: Stack, timeout: float = 120) -> None:
        """Delete one stack now and wait until it is gone."""
        if stack in self.live:
            self.live.remove(stack)  # one atomic step: tests may delete from threads
        self.heat.delete_stack(stack, timeout)

    def delete_all(self) -> None:
        """Delete what the test left; raise after trying them all if any failed."""
        errors = []
        for stack in list(self.live):
            try:
                self.delete(stack)
            except (AssertionError, requests.RequestException) as error:
                errors.append(f"{stack.name}: {error}")
        if errors:
            raise StackFailed("could not delete: " + "; ".join(errors))


def group_configs(heat: HeatClient, stack: Stack, count: int, timeout: float = 90) -> list[dict]:
    """Each group member's os_collect_config, once Heat has filled them all in."""
    def probe() -> list[dict] | None:
        outputs = {o["output_key"]: o.get("output_value")
                   for o in heat.show(stack).get("outputs", [])}
        found = outputs.get("os_collect_configs")
        if isinstance(found, list) and len(found) == count and \
                all(isinstance(c, dict) and c.get("heat") for c in found):
            return found
        return None

    return poll(f"os_collect_config of the {count} servers of {stack.name}", probe, timeout)
