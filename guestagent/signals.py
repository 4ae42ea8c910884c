"""Signals back to Heat (SPEC section 4): the five transports, body trimming, delivery.

Delivery checks the HTTP status: 2xx is delivered; 5xx, 408, 429, timeouts and
connection errors are transient (retried from the outbox with backoff); any
other 4xx is final and logged loudly.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from guestagent import http
from guestagent.errors import KeystoneError, SignalFailed, TransportError

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

# Heat's max_json_body_size.
MAX_BODY = 1048576
TRANSPORTS = ("CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL", "ZAQAR_SIGNAL", "NO_SIGNAL")
_TRANSIENT_4XX = {408, 425, 429}
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

    def describe(self) -> str:
        """A log-safe description (no signature, no password)."""
        if self.url:
            return f"{self.transport} {self.verb} {http.redact_url(self.url)}"
        if self.transport == "HEAT_SIGNAL":
            return f"HEAT_SIGNAL to {self.stack_id}/{self.resource_name}"
        if self.transport == "ZAQAR_SIGNAL":
            return f"ZAQAR_SIGNAL to queue {self.queue_id}"
        return self.transport


def target_for(inputs: Mapping[str, Any]) -> Target:
    """The signal target from a deployment's inputs; SignalFailed(final) when incomplete."""
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

    if transport in ("CFN_SIGNAL", "TEMP_URL_SIGNAL"):
        need("deploy_signal_id")
        default = "PUT" if transport == "TEMP_URL_SIGNAL" else "POST"
        verb = str(inputs.get("deploy_signal_verb") or default).upper()
        return Target(transport, url=str(inputs["deploy_signal_id"]), verb=verb)
    if transport in ("HEAT_SIGNAL", "ZAQAR_SIGNAL"):
        need("deploy_auth_url", "deploy_user_id", "deploy_password", "deploy_project_id")
        auth = {k: inputs.get(f"deploy_{k}") for k in
                ("auth_url", "user_id", "password", "project_id", "region_name")}
        if transport == "HEAT_SIGNAL":
            need("deploy_stack_id", "deploy_resource_name")
            return Target(transport, auth=auth, stack_id=str(inputs["deploy_stack_id"]),
                          resource_name=str(inputs["deploy_resource_name"]))
        need("deploy_queue_id")
        return Target(transport, auth=auth, queue_id=str(inputs["deploy_queue_id"]))
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


def send(target: Target, body: bytes) -> None:
    """Deliver one signal body; SignalFailed says whether retrying may help."""
    if target.transport == "NO_SIGNAL":
        return
    headers = {"Content-Type": "application/json"}
    try:
        if target.url:
            resp = http.request(target.verb, target.url, data=body, headers=headers)
        else:
            resp = _send_keystone(target, body, headers)
    except KeystoneError as exc:
        raise SignalFailed(f"{target.describe()}: {exc.reason}", transient=exc.transient) from exc
    except TransportError as exc:
        raise SignalFailed(f"{target.describe()}: {exc}", transient=True) from exc
    status = resp.status_code
    if 200 <= status < 300:
        return
    transient = status >= 500 or status in _TRANSIENT_4XX
    raise SignalFailed(f"{target.describe()}: HTTP {status}", transient=transient)


def _send_keystone(target: Target, body: bytes, headers: dict) -> requests.Response:
    from guestagent import keystone

    auth = target.auth or {}
    creds = keystone.Credentials(auth_url=auth["auth_url"], user_id=auth["user_id"],
                                 password=auth["password"], project_id=auth["project_id"],
                                 region_name=auth.get("region_name") or None)
    client = keystone.client(creds)
    if target.transport == "HEAT_SIGNAL":
        base = client.endpoint("orchestration")
        url = (f"{base}/stacks/{quote(target.stack_id, safe='/')}/resources/"
               f"{quote(target.resource_name, safe='')}/signal")
        return client.request("POST", url, data=body, headers=headers)
    base = client.endpoint("messaging")
    url = f"{base}/v2/queues/{quote(target.queue_id, safe='')}/messages"
    message = b'{"messages": [{"ttl": 600, "body": ' + body + b"}]}"
    headers = dict(headers, **{"Client-ID": CLIENT_ID, "X-Project-Id": creds.project_id})
    return client.request("POST", url, data=message, headers=headers)
