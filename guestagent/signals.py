"""Signals back to Heat (SPEC section 4): the five transports, body trimming, delivery.

Delivery checks the HTTP status: 2xx is delivered; 5xx, 408, 429, timeouts and
connection errors are transient (retried from the outbox with backoff); any
other 4xx is final and logged loudly, and so is a signal URL that is not http(s).
Each attempt has an overall deadline (`ATTEMPT_DEADLINE`, a Keystone login included)
and `deliver` bounds all the attempts made within one pass (`PASS_BUDGET`), so a dead
endpoint holds up the rest of the pass by at most that. A signal uses the TLS settings
(`ca_certificate`, `insecure`) of the source that delivered its deployment.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from guestagent import http
from guestagent.errors import KeystoneError, SignalFailed, TransportError
from guestagent.logs import escape

log = logging.getLogger(__name__)

# Heat's max_json_body_size.
MAX_BODY = 1048576
TRANSPORTS = ("CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL", "ZAQAR_SIGNAL", "NO_SIGNAL")
_TRANSIENT_4XX = {408, 425, 429}
# Bounds on one attempt (connect + send + whole reply, a Keystone login included) and on all
# the attempts `deliver` makes in one pass; what is left over is retried from the outbox.
ATTEMPT_DEADLINE = 20.0
PASS_BUDGET = 30.0
ATTEMPT_TIMEOUT = (10.0, 20.0)  # connect, each read
# Heat answers a signal with a few bytes: more than this is not read.
MAX_REPLY = 64 * 1024
# One Zaqar client id per agent process, as the v2 API asks.
CLIENT_ID = str(uuid.uuid4())


@dataclass(frozen=True)
class Target:
    """Where and how one deployment's signal goes. Holds secrets: never log it whole."""

    transport: str
    url: str | None = None
    verb: str = "POST"
    auth: Mapping[str, Any] | None = None
    stack_id: str | None = None
    resource_name: str | None = None
    queue_id: str | None = None
    verify: bool | str = True  # from the delivering source's ca_certificate / insecure

    def describe(self) -> str:
        """A log-safe description (no signature, no password)."""
        if self.url:
            return escape(f"{self.transport} {self.verb} {http.redact_url(self.url)}")
        if self.transport == "HEAT_SIGNAL":
            return escape(f"HEAT_SIGNAL to {self.stack_id}/{self.resource_name}")
        if self.transport == "ZAQAR_SIGNAL":
            return escape(f"ZAQAR_SIGNAL to queue {self.queue_id}")
        return self.transport


def target_for(inputs: Mapping[str, Any],
               source_options: Mapping[str, Any] | None = None) -> Target:
    """The signal target from a deployment's inputs; SignalFailed(final) when incomplete or
    when a URL is not http(s). `source_options` are the options of the source that delivered
    the deployment: its `ca_certificate` / `insecure` apply to the signal too."""
    from guestagent.collectors.openstack import verify_option

    verify = verify_option(source_options or {})
    transport = inputs.get("deploy_signal_transport")
    if not transport:
        # Heat before deploy_signal_transport existed: infer it as heat-config-notify did.
        if inputs.get("deploy_signal_id"):
            transport = "TEMP_URL_SIGNAL" if str(inputs.get("deploy_signal_verb")).upper() == "PUT" \
                else "CFN_SIGNAL"
        elif inputs.get("deploy_queue_id"):
            transport = "ZAQAR_SIGNAL"
        elif inputs.get("deploy_auth_url"):
            transport = "HEAT_SIGNAL"
        else:
            transport = "NO_SIGNAL"
    if transport not in TRANSPORTS:
        raise SignalFailed(f"input deploy_signal_transport: unknown transport {transport!r}",
                           transient=False)

    def need(*names: str) -> None:
        missing = [n for n in names if not inputs.get(n)]
        if missing:
            raise SignalFailed(f"{transport} needs input(s) {', '.join(missing)}", transient=False)

    def url(name: str) -> str:
        value = inputs.get(name)
        if not isinstance(value, str) or not http.is_http_url(value):
            shown = http.redact_url(value)[:200] if isinstance(value, str) else type(value).__name__
            raise SignalFailed(f"{transport}: input {name} is not an http(s) URL: "
                               f"{escape(shown)}", transient=False)
        return value

    if transport in ("CFN_SIGNAL", "TEMP_URL_SIGNAL"):
        need("deploy_signal_id")
        default = "PUT" if transport == "TEMP_URL_SIGNAL" else "POST"
        verb = str(inputs.get("deploy_signal_verb") or default).upper()
        if verb not in ("POST", "PUT"):
            raise SignalFailed(f"{transport}: input deploy_signal_verb must be POST or PUT, not "
                               f"{escape(verb[:20])!r}", transient=False)
        return Target(transport, url=url("deploy_signal_id"), verb=verb, verify=verify)
    if transport in ("HEAT_SIGNAL", "ZAQAR_SIGNAL"):
        need("deploy_auth_url", "deploy_user_id", "deploy_password", "deploy_project_id")
        url("deploy_auth_url")
        auth = {k: inputs.get(f"deploy_{k}") for k in
                ("auth_url", "user_id", "password", "project_id", "region_name")}
        if transport == "HEAT_SIGNAL":
            need("deploy_stack_id", "deploy_resource_name")
            return Target(transport, auth=auth, stack_id=str(inputs["deploy_stack_id"]),
                          resource_name=str(inputs["deploy_resource_name"]), verify=verify)
        need("deploy_queue_id")
        return Target(transport, auth=auth, queue_id=str(inputs["deploy_queue_id"]),
                      verify=verify)
    return Target("NO_SIGNAL")


def trim(response: Mapping[str, Any], where: str = "", limit: int = MAX_BODY) -> bytes:
    """The JSON body for `response`, cutting the middle of deploy_stdout and deploy_stderr so
    it fits `limit` bytes.

    Each text is cut at most once; its one marker says exactly how many characters were cut
    (and how many bytes the capture had already dropped, when its own marker fell inside the
    cut) and names `where` (the file holding the full reply). Outputs are never cut: when
    they alone are too large (see `fit_problem`) the body is a failure naming them.
    """
    body = _dump(response)
    if len(body) <= limit:
        return body
    problem = fit_problem(response, where, limit)
    reply = None if problem else _fill(response, _texts(response), limit, where)
    if reply is None:
        # What cannot be cut is too large alone: fail rather than send what Heat refuses (413).
        problem = problem or (f"reply too large to signal ({len(body)} bytes > {limit}); "
                              f"full reply in {where or 'the agent state'}")
        return _dump({"deploy_stdout": "", "deploy_status_code": 1,
                      "deploy_stderr": f"guestagent: {problem}"})
    return _dump(reply)


def fit_problem(response: Mapping[str, Any], where: str = "", limit: int = MAX_BODY
                ) -> str | None:
    """None when `trim` can make `response` fit `limit` by cutting deploy_stdout/stderr; else
    one line naming the largest outputs and their sizes, for failing the deployment before
    its result is recorded as a success."""
    texts = _texts(response)
    fixed = len(_dump({**response, **{k: "" for k in texts}}))
    needed = fixed + (_marker_room(where) + _MIN_SHARE) * len(texts)
    if needed <= limit:
        return None
    sizes = sorted(((len(_dump(v)), k) for k, v in response.items() if k not in _TEXT_KEYS),
                   reverse=True)
    named = ", ".join(f"output {k!r} is {n} bytes" for n, k in sizes[:3] if n > 64) \
        or "its fields are"
    return (f"reply too large to signal: {named} (as JSON); the signal needs at least {needed} "
            f"bytes, more than Heat accepts ({limit}, its max_json_body_size); full reply in "
            f"{where or 'the agent state'}")


_TEXT_KEYS = ("deploy_stdout", "deploy_stderr", "deploy_status_code")
# Bytes each cut text keeps at least (its head and tail), so a cut text still says something.
_MIN_SHARE = 1024
# The line guestagent.capture puts where a long capture dropped bytes.
_CAPTURE_MARK = re.compile(r"\n\[\.\.\. guestagent dropped (\d+) bytes here;[^\]\n]*\]\n")


def _texts(response: Mapping[str, Any]) -> list[str]:
    return [k for k in ("deploy_stdout", "deploy_stderr") if isinstance(response.get(k), str)]


def _marker(cut: int, where: str, dropped: int = 0) -> str:
    where = where or "the agent state"
    if dropped:
        return (f"\n[... guestagent cut {cut} characters here to fit the signal, where the "
                f"capture had already dropped {dropped} bytes; what was kept is in {where} ...]\n")
    return f"\n[... guestagent cut {cut} characters here to fit the signal; full text in {where} ...]\n"


def _marker_room(where: str) -> int:
    # The longest marker `where` can give (numbers of 15 digits), as JSON bytes.
    return _text_bytes(_marker(10 ** 15, where, 10 ** 15))


def _fill(response: Mapping[str, Any], keys: list, limit: int, where: str) -> dict | None:
    """Share the bytes left under `limit` among `keys` (smallest first), cutting the rest."""
    reply = dict(response)
    fixed = len(_dump({**reply, **{k: "" for k in keys}}))
    budget = limit - fixed - _marker_room(where) * len(keys)
    if budget < _MIN_SHARE * len(keys):
        return None
    sizes = {k: _text_bytes(reply[k]) for k in keys}
    pending = sorted(keys, key=sizes.get)
    while pending:
        key = pending.pop(0)
        share = min(sizes[key], budget // (len(pending) + 1))
        budget -= share
        if share < sizes[key]:
            reply[key] = _cut(reply[key], share, where)
    return reply


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "backslashreplace")


def _text_bytes(text: str) -> int:
    return len(_dump(text)) - 2


def _cut(text: str, max_bytes: int, where: str) -> str:
    """Keep the head and tail of `text` so its JSON encoding (without marker) fits `max_bytes`;
    one marker stands for everything between, a capture's own marker included."""
    chars = min(len(text), max_bytes)
    while True:
        start, end = _widen(text, chars // 2, len(text) - (chars - chars // 2) if chars else len(text))
        used = _text_bytes(text[:start]) + _text_bytes(text[end:])
        if used <= max_bytes or chars == 0:
            break
        chars = int(chars * max_bytes / used * 0.98)
    removed = text[start:end]
    marks = list(_CAPTURE_MARK.finditer(removed))
    dropped = sum(int(m.group(1)) for m in marks)
    cut = len(removed) - sum(len(m.group(0)) for m in marks)
    return text[:start] + _marker(cut, where, dropped) + text[end:]


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) grown so no capture marker is split by it (a marker is cut whole or kept)."""
    for mark in _CAPTURE_MARK.finditer(text):
        if mark.start() < start < mark.end():
            start = mark.start()
        if mark.start() < end < mark.end():
            end = mark.end()
    return start, max(start, end)


def send(target: Target, body: bytes, *, deadline: float | http.Deadline = ATTEMPT_DEADLINE
         ) -> None:
    """Deliver one signal body within `deadline` (seconds, or a shared http.Deadline);
    SignalFailed says whether retrying may help."""
    if target.transport == "NO_SIGNAL":
        return
    if not isinstance(deadline, http.Deadline):
        deadline = http.Deadline(deadline)
    headers = {"Content-Type": "application/json"}
    try:
        if target.url:
            resp = http.request(target.verb, target.url, data=body, headers=headers,
                                verify=target.verify, timeout=ATTEMPT_TIMEOUT,
                                max_body=MAX_REPLY, deadline=deadline)
        else:
            resp = _send_keystone(target, body, headers, deadline)
    except KeystoneError as exc:
        raise SignalFailed(f"{target.describe()}: {exc.reason}", transient=exc.transient) from exc
    except TransportError as exc:
        raise SignalFailed(f"{target.describe()}: {exc}",
                           transient=exc.kind != "InvalidURL") from exc
    status = resp.status_code
    if 200 <= status < 300:
        return
    transient = status >= 500 or status in _TRANSIENT_4XX
    raise SignalFailed(f"{target.describe()}: HTTP {status}", transient=transient)


def deliver(target: Target, body: bytes, *, attempts: int = 3,
            budget: float | http.Deadline = PASS_BUDGET,
            sleep: Callable[[float], None] = time.sleep) -> None:
    """Up to `attempts` sends of one signal with a short randomised backoff between them,
    all within `budget` (seconds, or an http.Deadline shared by a whole pass). SignalFailed
    (transient) when the budget runs out: the outbox retries it later."""
    from guestagent import retry

    if not isinstance(budget, http.Deadline):
        budget = http.Deadline(budget)

    def attempt() -> None:
        if budget.expired():
            raise SignalFailed(f"{target.describe()}: not delivered within the "
                               f"{budget.seconds:g} s bound on in-pass attempts", transient=True)
        send(target, body, deadline=http.Deadline(min(ATTEMPT_DEADLINE, budget.left())))

    def bounded_sleep(seconds: float) -> None:
        sleep(max(0.0, min(seconds, budget.end - time.monotonic())))

    retry.quick(attempt, attempts=attempts, sleep=bounded_sleep,
                retry_if=lambda e: isinstance(e, SignalFailed) and e.transient
                and not budget.expired())


def _send_keystone(target: Target, body: bytes, headers: dict,
                   deadline: http.Deadline) -> http.Reply:
    from guestagent import keystone

    auth = target.auth or {}
    creds = keystone.Credentials(auth_url=auth["auth_url"], user_id=auth["user_id"],
                                 password=auth["password"], project_id=auth["project_id"],
                                 region_name=auth.get("region_name") or None,
                                 verify=target.verify, timeout=ATTEMPT_TIMEOUT[1])
    client = keystone.client(creds)
    if target.transport == "HEAT_SIGNAL":
        base = client.endpoint("orchestration", deadline=deadline)
        url = (f"{base}/stacks/{quote(target.stack_id, safe='/')}/resources/"
               f"{quote(target.resource_name, safe='')}/signal")
        return client.request("POST", url, data=body, headers=headers, max_body=MAX_REPLY,
                              deadline=deadline)
    base = client.endpoint("messaging", deadline=deadline)
    url = f"{base}/v2/queues/{quote(target.queue_id, safe='')}/messages"
    message = b'{"messages": [{"ttl": 600, "body": ' + body + b"}]}"
    headers = dict(headers, **{"Client-ID": CLIENT_ID, "X-Project-Id": creds.project_id})
    return client.request("POST", url, data=message, headers=headers, max_body=MAX_REPLY,
                          deadline=deadline)
