"""What a pass did, as log lines: each poll and each plan decision at DEBUG (`--log-level
debug`), and every deployment that leaves the metadata at INFO.

    poll source=request http=200 bytes=2143 time=0.004s
    poll source=local result=not-modified time=0.000s
    poll source=heat result=failed time=5.002s error=heat: HTTP 503 ...
    plan deployment=web (5b1e...) decision=run why=new in the metadata
    plan deployment=db (77c0...) decision=skip why=already signalled (status 0)
    gone deployment=old (9f3a...) was=signalled: no longer in the metadata; its hook's cleanup runs

The agent loop calls these (see each function for where); they only format and log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("guestagent")

# Sources that answer over HTTP: their "not modified" is a 304, a new document a 200.
HTTP_SOURCES = frozenset({"request", "heat", "cfn", "ec2", "zaqar"})


def poll(source: str, fresh: Any, seconds: float, error: BaseException | None = None) -> None:
    """One poll of `source`: `fresh` is what its collect() returned (a Collected, the
    NOT_MODIFIED marker, or None with `error` when it raised). Call it in the loop's collect
    step right after each collector.collect(cached), with the time the call took."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    from guestagent.collectors.base import NOT_MODIFIED

    took = f"time={seconds:.3f}s"
    if error is not None:
        log.debug("poll source=%s result=failed %s error=%s", source, took, error)
    elif fresh is NOT_MODIFIED:
        answer = "http=304" if source in HTTP_SOURCES else "result=not-modified"
        log.debug("poll source=%s %s %s", source, answer, took)
    elif fresh is None:
        log.debug("poll source=%s result=not-configured %s", source, took)
    else:
        size = len(json.dumps(getattr(fresh, "document", None), default=str).encode())
        answer = "http=200" if source in HTTP_SOURCES else "result=read"
        log.debug("poll source=%s %s bytes=%d %s", source, answer, size, took)


@dataclass
class Decision:
    """Why the plan runs, skips or forgets one deployment."""

    name: str
    id: str
    decision: str   # "run", "skip" or "gone"
    why: str


def decisions(parsed: Iterable[Any], journal: Mapping[str, Any], to_run: Iterable[Any],
              gone: Iterable[str]) -> list[Decision]:
    """Explain a deployments.Plan: `parsed` the deployments in the metadata, `journal` the
    entries by key, `to_run` and `gone` the plan's two lists."""
    running = {d.key for d in to_run}
    out = []
    for dep in parsed:
        entry = journal.get(dep.key)
        if dep.key in running:
            why = "new in the metadata" if entry is None else \
                f"unfinished: {entry.state}, attempt {entry.attempts + 1}"
            out.append(Decision(dep.name, dep.id, "run", why))
        elif entry is None:
            out.append(Decision(dep.name, dep.id, "skip",
                                "an old heat-config marker says it was deployed"))
        else:
            code = "" if entry.status_code is None else f" (status {entry.status_code})"
            out.append(Decision(dep.name, dep.id, "skip", f"already {entry.state}{code}"))
    for key in gone:
        entry = journal[key]
        out.append(Decision(entry.name, entry.id, "gone",
                            f"no longer in the metadata (was {entry.state})"))
    return out


def plan(items: list[Decision]) -> None:
    """Log each decision at DEBUG. Call it once per planned pass, right after
    deployments.plan(...), with decisions(parsed, journal, plan.to_run, plan.gone)."""
    for d in items:
        log.debug("plan deployment=%s (%s) decision=%s why=%s", d.name, d.id, d.decision, d.why)


def gone(entry: Any) -> None:
    """INFO: a deployment left the metadata. Call it once for each key of the plan's `gone`
    list, before its hook's cleanup runs (for docker-compose, leaving takes the project down)."""
    log.info("gone deployment=%s (%s) was=%s: no longer in the metadata; its hook's cleanup "
             "runs", entry.name, entry.id, entry.state)
