"""Reading the HTTP replies of the network sources: size-bounded, JSON-checked, and described
in messages without the query string (where pre-signed URLs keep their secret)."""

from __future__ import annotations

from guestagent import http, jsondoc
from guestagent.errors import SourceUnavailable
from guestagent.logs import escape

MAX_BODY = 32 * 1024 * 1024


def json_reply(source: str, what: str, resp: http.Reply):
    """The decoded JSON body of a 2xx reply; SourceUnavailable saying what was wrong otherwise."""
    if not 200 <= resp.status_code < 300:
        raise SourceUnavailable(source, f"{what}: HTTP {resp.status_code}")
    if len(resp.content) > MAX_BODY:
        raise SourceUnavailable(source, f"{what}: body larger than {MAX_BODY} bytes")
    try:
        return jsondoc.loads(resp.content, max_bytes=MAX_BODY)
    except jsondoc.DocumentError as exc:
        kind = escape(str(resp.headers.get("Content-Type", "unknown type"))[:100])
        raise SourceUnavailable(source, f"{what}: body is not JSON ({kind}): {exc}") from None


def describe(method: str, url: str) -> str:
    """A request as it may appear in messages: no query string."""
    return f"{method} {http.redact_url(url)}"
