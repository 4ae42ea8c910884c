"""Create the Keystone objects that Heat and the e2e tests need, over REST.

setup.sh runs this with the keystone venv's Python once Keystone answers
and ``keystone-manage bootstrap`` has made the admin. A handful of direct
REST calls in one process take well under a second, where the same work
through the ``openstack`` CLI costs about 1.5 s of start-up per command.
Idempotent: every object is looked up before it is created.

Reads the lab's settings (lab.env) from the environment.
"""

import os
import sys
import time
from typing import Any

import requests

ENV = os.environ
KEYSTONE = f"http://{ENV['LAB_HOST']}:{ENV['KEYSTONE_PORT']}/v3"
HEAT_API = f"http://{ENV['LAB_HOST']}:{ENV['HEAT_API_PORT']}/v1/%(tenant_id)s"
HEAT_CFN = f"http://{ENV['LAB_HOST']}:{ENV['HEAT_CFN_PORT']}/v1"
COMPUTE = f"http://{ENV['LAB_HOST']}:{ENV['COMPUTE_PORT']}/v2.1"


def login(user: dict, scope: dict) -> requests.Response:
    """Password login; returns the response (token in X-Subject-Token)."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                     "scope": scope}}
    reply = requests.post(f"{KEYSTONE}/auth/tokens", json=body, timeout=30)
    reply.raise_for_status()
    return reply


class Admin:
    """The few Keystone v3 calls setup needs, as the bootstrap admin."""

    def __init__(self) -> None:
        reply = login({"name": "admin", "domain": {"id": "default"},
                       "password": ENV["ADMIN_PASSWORD"]},
                      {"project": {"name": "admin", "domain": {"id": "default"}}})
        self.http = requests.Session()
        self.http.headers["X-Auth-Token"] = reply.headers["X-Subject-Token"]
        self.calls = 1

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        self.calls += 1
        reply = self.http.request(method, f"{KEYSTONE}/{path}", timeout=30, **kwargs)
        if not reply.ok:
            sys.exit(f"bootstrap_keystone: {method} {path} -> {reply.status_code} {reply.text}")
        return reply

    def ensure(self, kind: str, match: dict, extra: dict | None = None) -> str:
        """Id of the <kind> whose fields equal ``match``; created with ``extra`` if absent."""
        found = self._call("GET", f"{kind}s", params=match).json()[f"{kind}s"]
        if found:
            return found[0]["id"]
        body = {kind: {**match, **(extra or {})}}
        return self._call("POST", f"{kind}s", json=body).json()[kind]["id"]

    def grant(self, target: str, target_id: str, user_id: str, role_id: str) -> None:
        """Give a user a role on a project or a domain (``target``)."""
        self._call("PUT", f"{target}s/{target_id}/users/{user_id}/roles/{role_id}")


def main() -> None:
    """Create everything, then prove it by logging in as demo and the domain admin."""
    started = time.monotonic()
    admin = Admin()
    role = {name: admin.ensure("role", {"name": name})
            for name in ("admin", "member", "service", "heat_stack_owner", "heat_stack_user")}

    # Heat's service user, and the services and endpoints the catalog hands out
    service_project = admin.ensure("project", {"name": "service", "domain_id": "default"})
    heat = admin.ensure("user", {"name": "heat", "domain_id": "default"},
                        {"password": ENV["HEAT_SERVICE_PASSWORD"]})
    for name in ("admin", "service"):
        admin.grant("project", service_project, heat, role[name])
    for kind, name, url in (("orchestration", "heat", HEAT_API),
                            ("cloudformation", "heat-cfn", HEAT_CFN),
                            ("compute", "nova", COMPUTE)):
        service = admin.ensure("service", {"type": kind}, {"name": name})
        for interface in ("public", "internal", "admin"):
            admin.ensure("endpoint", {"service_id": service, "interface": interface},
                         {"url": url, "region_id": ENV["REGION"]})

    # the stack domain, where Heat makes per-stack projects and guest users
    domain = admin.ensure("domain", {"name": ENV["STACK_DOMAIN"]},
                          {"description": "Heat stack projects and users"})
    domain_admin = admin.ensure("user", {"name": ENV["STACK_DOMAIN_ADMIN"], "domain_id": domain},
                                {"password": ENV["STACK_DOMAIN_ADMIN_PASSWORD"]})
    admin.grant("domain", domain, domain_admin, role["admin"])

    # the tests' tenant
    demo_project = admin.ensure("project", {"name": ENV["DEMO_PROJECT"], "domain_id": "default"})
    demo = admin.ensure("user", {"name": ENV["DEMO_USER"], "domain_id": "default"},
                        {"password": ENV["DEMO_PASSWORD"]})
    for name in ("member", "heat_stack_owner"):
        admin.grant("project", demo_project, demo, role[name])

    token = login({"id": demo, "password": ENV["DEMO_PASSWORD"]},
                  {"project": {"id": demo_project}}).json()["token"]
    have = {r["name"] for r in token["roles"]}
    kinds = {s["type"] for s in token["catalog"]}
    if not {"member", "heat_stack_owner"} <= have or not {"orchestration", "cloudformation"} <= kinds:
        sys.exit(f"bootstrap_keystone: demo login lacks roles or services: {have} {kinds}")
    login({"id": domain_admin, "password": ENV["STACK_DOMAIN_ADMIN_PASSWORD"]},
          {"domain": {"id": domain}})
    print(f"keystone objects: {admin.calls + 2} REST calls in "
          f"{time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
