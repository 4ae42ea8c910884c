"""What `guestagent status` prints: a table for people, or JSON in a versioned schema.

`status --json` (with or without `--wait`) prints one object, schema 1:

    {"schema": 1,
     "verdict": "ok" | "failed" | "degraded" | "not-started",
     "reasons": ["<why the verdict is not ok>", ...],
     "agent_running": true,           # an agent holds the state directory's lock
     "first_pass_done": true,         # the agent finished a pass since this boot
     "sources_failing": [{"source": "<name>", "error": "<its last error>"}, ...],
     "deployments": [{"id", "name", "group", "action", "state", "status_code",
                      "attempts", "last_run", "signal", "signal_transport",
                      "signal_error", "error"}, ...]}

A new field may be added within a schema number; renaming or removing one bumps it.
"""

from __future__ import annotations

from guestagent import status
from guestagent.health import Health
from guestagent.logs import escape

SCHEMA = 1
VERDICTS = {status.OK: "ok", status.FAILED: "failed", status.DEGRADED: "degraded"}
NOT_STARTED = "not-started"


def verdict(snap: status.Snapshot | None, health: Health) -> tuple[str, int]:
    """The verdict's name and code (the exit code of `status --wait`): "not-started" and
    DEGRADED while the agent has not finished its first pass, else the snapshot's."""
    if not health.first_pass_done or snap is None:
        if snap is not None:
            snap.reasons = [f"not started yet: {health.why_not}"]
        return NOT_STARTED, status.DEGRADED
    code = snap.verdict()
    return VERDICTS[code], code


def as_json(snap: status.Snapshot | None, health: Health, name: str) -> dict:
    """The schema-1 object for `status --json`."""
    reasons = snap.reasons if snap is not None else [f"not started yet: {health.why_not}"]
    failing = snap.sources_failing if snap is not None else health.sources_failing
    return {"schema": SCHEMA, "verdict": name, "reasons": reasons,
            "agent_running": bool(snap and snap.agent_running),
            "first_pass_done": health.first_pass_done,
            "sources_failing": [{"source": s, "error": e} for s, e in sorted(failing.items())],
            "deployments": [status.status_row(e) for e in snap.entries] if snap else []}


def sources_lines(failing: dict[str, str]) -> list[str]:
    """One line per failing source with its error text, for people."""
    if not failing:
        return []
    width = max(len(n) for n in failing)
    return ["", "SOURCES FAILING"] + [f"  {n:{width}}  {e}" for n, e in sorted(failing.items())]


def text(snap: status.Snapshot | None, health: Health, name: str, waited: bool) -> str:
    """The table, failing sources, whether the first pass is done, and with --wait the
    verdict and its reasons."""
    lines = [status.table([status.status_row(e) for e in snap.entries] if snap else [])]
    lines += sources_lines(snap.sources_failing if snap else health.sources_failing)
    if not health.first_pass_done:
        lines += ["", f"not started yet: {health.why_not}"]
    if waited:
        lines += ["", f"verdict: {name}"]
        lines += [f"  {r}" for r in (snap.reasons if snap else [])
                  if not r.startswith("not started yet")]
    # Ids, names and peers' messages may hold control characters: never let them drive a
    # terminal or forge a line.
    return "\n".join(escape(line) for line in "\n".join(lines).split("\n"))
