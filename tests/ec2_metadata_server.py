"""Run inside a private network namespace: serve an EC2 metadata tree on 169.254.169.254:80
the way the EC2/Nova metadata service does, then run the ec2 collector and print its result.

Usage: ec2_metadata_server.py TREE_JSON [collector options JSON]
"""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from guestagent.collectors import build


def listing(node: dict, under_public_keys: bool) -> str:
    lines = []
    for key, value in node.items():
        if under_public_keys:
            lines.append(f"{key}={value['_name']}")
        elif isinstance(value, dict):
            lines.append(key + "/")
        else:
            lines.append(key)
    return "\n".join(lines)


def make_handler(tree: dict, seen: list):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.path)
            prefix = "/latest/meta-data/"
            node, parts = tree, [p for p in self.path[len(prefix):].split("/") if p]
            if not self.path.startswith(prefix):
                return self.reply(404, "Not Found")
            for part in parts:
                if not isinstance(node, dict) or part not in node:
                    return self.reply(404, "Not Found")
                node = node[part]
            if node is None:  # listed, but the service fails to serve it
                return self.reply(404, "Not Found")
            if isinstance(node, dict):
                node = {k: v for k, v in node.items() if k != "_name"}
                return self.reply(200, listing(node, parts[-1:] == ["public-keys"]))
            self.reply(200, node)

        def reply(self, status, text):
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
    return Handler


def main():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"], check=True)
    tree = json.loads(sys.argv[1])
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    seen: list = []
    if tree is not None:
        server = ThreadingHTTPServer(("169.254.169.254", 80), make_handler(tree, seen))
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        doc = build("ec2", options).collect(None).document
        print(json.dumps({"document": doc, "requests": seen}))
    except Exception as exc:  # noqa: BLE001 -- reported to the test, which asserts on it
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "requests": seen}))


if __name__ == "__main__":
    main()
