"""Put the lab's Swift and Zaqar in its Keystone: service users and catalog entries.

sz.sh runs this (with the keystone venv's Python) on every setup: a lab
bootstrapped again (``setup.sh --fresh``) has lost them. Idempotent, over
REST with the lab's own admin helper. A running Heat reads the catalog at
request time, so it needs no restart to start using them.

Catalog: object-store (Swift; Heat's temp URLs hard-code ``/v1/AUTH_<project>``),
messaging (Zaqar's wsgi API) and messaging-websocket (its websocket API, where
an agent subscribes to its metadata queue; os-collect-config looks it up by that type).
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bootstrap_keystone import Admin

ENV = os.environ
HOST = ENV["LAB_HOST"]
SERVICES = (
    ("object-store", "swift", f"http://{HOST}:{ENV['SWIFT_PORT']}/v1/AUTH_%(tenant_id)s"),
    ("messaging", "zaqar", f"http://{HOST}:{ENV['ZAQAR_PORT']}"),
    ("messaging-websocket", "zaqar-websocket", f"ws://{HOST}:{ENV['ZAQAR_WS_PORT']}"),
)
USERS = {"swift": ENV["SWIFT_SERVICE_PASSWORD"], "zaqar": ENV["ZAQAR_SERVICE_PASSWORD"]}


def main() -> None:
    """Create what is missing; print how many calls it took."""
    started = time.monotonic()
    admin = Admin()
    role = {name: admin.ensure("role", {"name": name}) for name in ("admin", "service")}
    service_project = admin.ensure("project", {"name": "service", "domain_id": "default"})
    for user, password in USERS.items():
        user_id = admin.ensure("user", {"name": user, "domain_id": "default"},
                               {"password": password})
        for name in ("admin", "service"):
            admin.grant("project", service_project, user_id, role[name])
    for kind, name, url in SERVICES:
        service = admin.ensure("service", {"type": kind}, {"name": name})
        for interface in ("public", "internal", "admin"):
            admin.ensure("endpoint", {"service_id": service, "interface": interface},
                         {"url": url, "region_id": ENV["REGION"]})
    print(f"swift and zaqar in keystone: {admin.calls} REST calls in "
          f"{time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
