"""What the heat and zaqar sources share: Keystone credentials from source options, and
reading a JSON reply without ever echoing the request's secrets."""

from __future__ import annotations

from typing import Any, Mapping

import requests

from guestagent import http
from guestagent.errors import SourceNotConfigured, SourceUnavailable
from guestagent.keystone import Credentials

MAX_BODY = 32 * 1024 * 1024
_REQUIRED = ("auth_url", "user_id", "password", "project_id")


def verify_option(options: Mapping[str, Any]) -> bool | str:
    """TLS verification: a CA bundle path when given, off only when `insecure` is set."""
    if options.get("ca_certificate"):
        return str(options["ca_certificate"])
    return not _truthy(options.get("insecure", False))


def credentials(source: str, options: Mapping[str, Any], extra: tuple[str, ...] = ()) -> Credentials:
    """Keystone credentials from a source's options; SourceNotConfigured naming what is missing."""
    missing = [k for k in _REQUIRED + extra if not options.get(k)]
    if missing:
        raise SourceNotConfigured(f"{source}: missing option(s) {', '.join(missing)}")
    return Credentials(auth_url=str(options["auth_url"]), user_id=str(options["user_id"]),
                       password=str(options["password"]), project_id=str(options["project_id"]),
                       region_name=options.get("region_name") or None,
                       verify=verify_option(options))


def json_reply(source: str, what: str, resp: requests.Response):
    """The decoded JSON body of a 2xx reply; SourceUnavailable saying what was wrong otherwise."""
    if not 200 <= resp.status_code < 300:
        raise SourceUnavailable(source, f"{what}: HTTP {resp.status_code}")
    if len(resp.content) > MAX_BODY:
        raise SourceUnavailable(source, f"{what}: body larger than {MAX_BODY} bytes")
    try:
        return resp.json()
    except ValueError:
        kind = resp.headers.get("Content-Type", "unknown type")
        raise SourceUnavailable(source, f"{what}: body is not valid JSON ({kind})") from None


def describe(method: str, url: str) -> str:
    """A request as it may appear in messages: no query string."""
    return f"{method} {http.redact_url(url)}"


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")
