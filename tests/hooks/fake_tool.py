#!/usr/bin/env python3
"""A stand-in for a configuration tool (puppet, ansible-playbook, docker, ...) that records how
it was started.

Each start writes `call-<n>.json` (argv, environment, working directory) into the directory
named by FAKE_TOOL_RECORD, n counting from 0. FAKE_TOOL_REPLY (JSON) says what the n-th start
does: an object for every start, or a list with one object per start; keys `stdout`, `stderr`,
`returncode` and `files` ({path: text}, written before exiting).
"""

import json
import os
import sys


def main() -> int:
    record = os.environ["FAKE_TOOL_RECORD"]
    os.makedirs(record, exist_ok=True)
    # O_EXCL claims the next number even if two starts race.
    n = 0
    while True:
        path = os.path.join(record, f"call-{n}.json")
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            break
        except FileExistsError:
            n += 1
    with os.fdopen(fd, "w") as out:
        json.dump({"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd()}, out)
    reply = json.loads(os.environ.get("FAKE_TOOL_REPLY") or "{}")
    if isinstance(reply, list):
        reply = reply[n] if n < len(reply) else {}
    for name, text in reply.get("files", {}).items():
        with open(name, "w") as out:
            out.write(text)
    sys.stdout.write(reply.get("stdout", ""))
    sys.stderr.write(reply.get("stderr", ""))
    return int(reply.get("returncode", 0))


if __name__ == "__main__":
    sys.exit(main())
