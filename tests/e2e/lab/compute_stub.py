"""A compute API stand-in for the lab: Heat's "does this server still exist?" question.

usage: compute_stub.py HOST PORT [LAB_DIR]

(LAB_DIR is not used: on the command line it marks the process as the
lab's, which is how the lab's scripts recognise their services.)

Before Heat waits for a deployment's DELETE signal, it asks Nova whether
the deployment's server exists (``GET /v2.1/servers/<id>``), first
discovering the API version (``GET /v2.1``); without a compute endpoint in
the catalog the stack's deletion fails. The lab has no Nova, so this
answers those two requests the way Nova 2.1 does, saying every server is
ACTIVE: the situation of a booted OS::Nova::Server, for which Heat runs
the DELETE action on the guest. A request without a token gets 401, as
from Nova; anything else 404. Standard library only: runs with any python3.
"""

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = {"id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1",
           "updated": "2013-07-23T11:33:21Z", "links": []}
SERVER = re.compile(r"^/v2\.1/servers/([A-Za-z0-9-]+)$")


class Handler(BaseHTTPRequestHandler):
    """GET /v2.1 and GET /v2.1/servers/<id>; nothing else."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if not self.headers.get("X-Auth-Token"):
            self.reply(401, {"error": {"code": 401, "message": "The request you have made "
                                                               "requires authentication."}})
        elif path == "/v2.1":
            self.reply(200, {"version": VERSION})
        elif match := SERVER.match(path):
            server_id = match.group(1)
            self.reply(200, {"server": {"id": server_id, "name": server_id, "status": "ACTIVE",
                                        "addresses": {}, "metadata": {}, "links": []}})
        else:
            self.reply(404, {"itemNotFound": {"code": 404, "message": "Not found"}})

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("OpenStack-API-Version", "compute 2.1")
        self.send_header("X-OpenStack-Nova-API-Version", "2.1")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write(f"compute_stub: {self.address_string()} {fmt % args}\n")


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
