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
import time
from pathlib import Path

from guestagent import deployments, retry, signals, state
from guestagent.compat import parser as compat_parser
from guestagent.errors import SignalFailed, StateError

EXIT_OK, EXIT_FAILED = 0, 1
# Inputs never kept on disk once the signal is settled (as the agent does).
SECRET_INPUTS = ("deploy_password", "deploy_signal_id")
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


def deliver(target: signals.Target, body: bytes, attempts: int = QUICK_ATTEMPTS) -> None:
    """Send `body`, retrying transient failures a few times; SignalFailed when it did not go."""
    retry.quick(lambda: signals.send(target, body), attempts=attempts,
                retry_if=lambda e: isinstance(e, SignalFailed) and e.transient)


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
    journal = _Journal(args.state_dir, dep, raw, response) if args.state_dir else None
    where = str(journal.response_path) if journal else "the response given on stdin"
    try:
        target = signals.target_for(dep.input_values())
        deliver(target, signals.trim(response, where))
    except SignalFailed as exc:
        queued = journal.failed(exc) if journal else False
        print(f"{name}: deployment {dep.label}: signal "
              f"{'not delivered yet, the agent retries it' if queued else 'failed'}: {exc}",
              file=sys.stderr)
        return EXIT_OK if queued else EXIT_FAILED
    except StateError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if journal:
        journal.delivered(target.transport)
    if target.transport != "NO_SIGNAL":
        print(f"{name}: deployment {dep.label}: signalled ({target.describe()})",
              file=sys.stderr)
    return EXIT_OK


class _Journal:
    """The deployment and its response in an agent's state directory, as the agent keeps them."""

    def __init__(self, state_dir: Path, dep: deployments.Deployment, raw: dict, response: dict):
        self.store = state.StateDir(state_dir).ensure()
        self.raw = raw
        now = time.time()
        entry = self.store.journal().get(dep.key) or state.JournalEntry(
            key=dep.key, id=dep.id, name=dep.name, group=dep.group, action=dep.action,
            received_at=now)
        self.store.save_deployment(dep.key, raw)
        self.store.save_response(dep.key, response)
        entry.state, entry.status_code, entry.finished_at = state.FINISHED, \
            _status_code(response), now
        entry.signal_final, entry.signal_error, entry.next_signal_at = False, None, 0.0
        self.store.record(entry)
        self.entry = entry
        self.response_path = self.store.deployment_dir(dep.key) / "response.json"

    def delivered(self, transport: str) -> None:
        entry = self.entry
        entry.state, entry.signalled_at, entry.transport = state.SIGNALLED, time.time(), \
            transport
        entry.signal_attempts += 1
        self.store.record(entry)
        self.store.strip_secrets(entry.key, self.raw, SECRET_INPUTS)

    def failed(self, exc: SignalFailed) -> bool:
        """Record the failure; True when the agent's outbox will retry it."""
        entry = self.entry
        entry.signal_attempts += 1
        entry.signal_error = str(exc)
        if exc.transient:
            entry.next_signal_at = time.time() + retry.delay_after(entry.signal_attempts)
        else:
            entry.signal_final = True
        self.store.record(entry)
        if entry.signal_final:
            self.store.strip_secrets(entry.key, self.raw, SECRET_INPUTS)
        return not entry.signal_final


if __name__ == "__main__":
    sys.exit(main())
