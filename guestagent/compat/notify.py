"""`guestagent notify` / `heat-config-notify`: signal a deployment's response by hand.

    guestagent notify DEPLOYMENT.json < RESPONSE.json

The deployment (as Heat put it in the metadata; its inputs say where the
signal goes) is read from the file, the response object from stdin (not JSON:
an empty response, as heat-config-notify did). The body goes through the
agent's signal code: the transport from the inputs, oversized text trimmed,
the HTTP status checked, transient failures retried a few times.

With `--state-dir`, the deployment and response are recorded in that agent's
journal and outbox: `guestagent status` shows it, and a signal that could not
be delivered yet is retried by the agent (a running agent on its next start).

Exit status: 0 delivered (or nothing to signal, or queued in the outbox),
1 usage error, unreadable deployment, or a signal refused or not delivered.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from guestagent import deployments, signals, state
from guestagent.compat import parser as compat_parser
from guestagent.errors import SignalFailed, StateError

EXIT_OK, EXIT_FAILED = 0, 1
QUICK_ATTEMPTS = 3


def build_parser(prog: str | None = None):
    """The parser of `notify`, as heat-config-notify was called."""
    p = compat_parser(prog, "notify", "heat-config-notify",
                      "send a deployment's response (JSON on stdin) to Heat")
    p.add_argument("deployment", nargs="?", type=Path,
                   help="the deployment's JSON file (its inputs name the signal target)")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="record it in this agent's journal; undelivered signals are retried "
                        "by the agent")
    return p


def read_response(stream, prog: str) -> dict:
    """The response object from `stream`; {} (with a warning) when it is not one."""
    try:
        data = json.load(stream)
    except ValueError:
        print(f"{prog}: no valid JSON on stdin; signalling an empty response", file=sys.stderr)
        return {}
    if not isinstance(data, dict):
        print(f"{prog}: stdin is not a JSON object; signalling an empty response",
              file=sys.stderr)
        return {}
    return data


def _status_code(response: dict) -> int:
    value = response.get("deploy_status_code", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1


def main(argv: list[str] | None = None, prog: str | None = None, stdin=None) -> int:
    """Signal one response; see the module docstring for the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    name = parser.prog
    if args.deployment is None:
        print(f"usage: {name} /path/to/deployment.json < /path/to/response.json",
              file=sys.stderr)
        return EXIT_FAILED
    response = read_response(sys.stdin if stdin is None else stdin, name)
    try:
        raw = json.loads(args.deployment.read_text())
    except (OSError, ValueError) as exc:
        print(f"{name}: cannot read deployment {args.deployment}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    dep = deployments.parse_one(raw)
    if args.state_dir:
        return _through_outbox(name, args.state_dir, dep, raw, response)
    try:
        target = signals.target_for(dep.input_values())
        signals.deliver(target, signals.trim(response, "the response given on stdin"),
                        attempts=QUICK_ATTEMPTS)
    except SignalFailed as exc:
        print(f"{name}: deployment {dep.label}: signal failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if target.transport != "NO_SIGNAL":
        print(f"{name}: deployment {dep.label}: signalled ({target.describe()})",
              file=sys.stderr)
    return EXIT_OK


def _through_outbox(name: str, state_dir: Path, dep: deployments.Deployment, raw: dict,
                    response: dict) -> int:
    """Record the result in the agent's journal (move `report`) and send it from its outbox,
    which keeps a failed signal for the agent to retry."""
    from guestagent.journal import FINISHED, SIGNALLED, Journal
    from guestagent.outbox import Outbox
    from guestagent.result import PassResult

    try:
        statedir = state.StateDir(state_dir).ensure()
        journal = Journal(statedir)
        statedir.save_deployment(dep.key, raw)
        statedir.save_response(dep.key, response)
        entry = journal.report(journal.get(dep.key), dep, _status_code(response), time.time())
        outbox = Outbox(statedir, journal, clock=time.time, sleep=time.sleep,
                        quick_attempts=QUICK_ATTEMPTS, stop_event=threading.Event())
        outbox.deliver(entry, PassResult(), quick=True)
    except StateError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    entry = journal.get(dep.key)
    if entry.state == SIGNALLED:
        if entry.transport != "NO_SIGNAL":
            print(f"{name}: deployment {dep.label}: signalled", file=sys.stderr)
        return EXIT_OK
    queued = entry.state == FINISHED
    print(f"{name}: deployment {dep.label}: signal "
          f"{'not delivered yet, the agent retries it' if queued else 'failed'}: "
          f"{entry.signal_error}", file=sys.stderr)
    return EXIT_OK if queued else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
