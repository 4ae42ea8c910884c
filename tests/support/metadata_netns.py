"""Run a command where 169.254.169.254 serves metadata, as on a cloud instance.

Meant to be started as `unshare -n -m python3 metadata_netns.py ...`: in the
fresh network namespace loopback gets the link-local metadata address, an
HTTP server on it answers `GET /metadata.json` with a file and stores every
`PUT`/`POST` to `/signal/<name>` (a temp-URL signal) as `<signals>/<name>`;
with `--root`, /dev and /proc are mounted into the tree (private mount
namespace, gone when this process ends) and the command runs chrooted there.

    unshare -n -m python3 metadata_netns.py --metadata M --signals DIR [--root R] -- CMD...
"""

from __future__ import annotations

import argparse
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

ADDRESS = "169.254.169.254"


def make_handler(metadata: Path, signals: Path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metadata.json":
                self.send_error(404)
                return
            body = metadata.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            name = self.path.rsplit("/", 1)[-1]
            if not self.path.startswith("/signal/") or not name.isalnum():
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            (signals / name).write_bytes(self.rfile.read(length))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT

        def log_message(self, *args):
            pass

    return Handler


def script_deployment_in_root(root: Path, work: Path, agent: str = "/usr/local/bin/guestagent"
                              ) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`guestagent --once` chrooted in `root` runs one script deployment from 169.254.169.254.

    The script writes /root/deployed-by-guestagent inside the tree and an output;
    returns the agent's completed process and the signal body it PUT (or None).
    """
    signals = work / "signals"
    signals.mkdir(parents=True, exist_ok=True)
    metadata = work / "metadata.json"
    metadata.write_text(json.dumps({"deployments": [{
        "id": "6e0e4d51-0000-4000-8000-000000000001", "name": "hello", "group": "script",
        "config": "#!/bin/sh\necho \"hello $who\" | tee /root/deployed-by-guestagent\n"
                  "echo -n done > $heat_outputs_path.result\n",
        "options": None,
        "inputs": [{"name": "who", "value": "image"},
                   {"name": "deploy_action", "value": "CREATE"},
                   {"name": "deploy_signal_transport", "value": "TEMP_URL_SIGNAL"},
                   {"name": "deploy_signal_id", "value": f"http://{ADDRESS}/signal/hello"},
                   {"name": "deploy_signal_verb", "value": "PUT"}],
        "outputs": [{"name": "result"}]}]}))
    done = subprocess.run(
        ["unshare", "-n", "-m", sys.executable, __file__, "--metadata", str(metadata),
         "--signals", str(signals), "--root", str(root), "--",
         agent, "--once", "--config", "/dev/null", "--state-dir", "/var/lib/guestagent",
         "--collectors", "request", "--request-metadata-url", f"http://{ADDRESS}/metadata.json"],
        capture_output=True, text=True, timeout=600)
    signal = signals / "hello"
    return done, json.loads(signal.read_text()) if signal.exists() else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metadata", type=Path, required=True)
    parser.add_argument("--signals", type=Path, required=True)
    parser.add_argument("--root", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True)
    if args.root:
        subprocess.run(["mount", "--make-rprivate", "/"], check=True)
        for mount_point in ("dev", "proc"):
            (args.root / mount_point).mkdir(exist_ok=True)
        subprocess.run(["mount", "--bind", "/dev", str(args.root / "dev")], check=True)
        subprocess.run(["mount", "-t", "proc", "proc", str(args.root / "proc")], check=True)
        command = ["chroot", str(args.root), *command]
    # Bound before the command starts, so the command never races the server.
    server = http.server.ThreadingHTTPServer((ADDRESS, 80),
                                             make_handler(args.metadata, args.signals))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return subprocess.run(command, timeout=600).returncode
    finally:
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
