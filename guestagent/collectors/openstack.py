"""What the network sources share: Keystone credentials, TLS and timeout settings from options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guestagent.errors import KeystoneError, SourceGone, SourceNotConfigured, SourceUnavailable
from guestagent.keystone import Credentials

_REQUIRED = ("auth_url", "user_id", "password", "project_id")


def verify_option(options: Mapping[str, Any]) -> bool | str:
    """TLS verification: a CA bundle path when given, off only when `insecure` is set."""
    ca = options.get("ca_certificate") or options.get("ca_file")  # ca_file: old [zaqar] name
    if ca:
        return str(ca)
    return not truthy(options.get("insecure", False))


def credentials(source: str, options: Mapping[str, Any], extra: tuple[str, ...] = ()) -> Credentials:
    """Keystone credentials from a source's options; SourceNotConfigured naming what is missing."""
    missing = [k for k in _REQUIRED + extra if not options.get(k)]
    if missing:
        raise SourceNotConfigured(f"{source}: missing option(s) {', '.join(missing)}")
    return Credentials(auth_url=str(options["auth_url"]), user_id=str(options["user_id"]),
                       password=str(options["password"]), project_id=str(options["project_id"]),
                       region_name=options.get("region_name") or None,
                       verify=verify_option(options), timeout=timeout_option(options))


def timeout_option(options: Mapping[str, Any]) -> float | None:
    """`timeout`: seconds to connect and per read (the whole exchange: twice that); None when
    not set (guestagent.http's defaults)."""
    value = options.get("timeout")
    return float(value) if value else None


def truthy(value: Any) -> bool:
    """An option's yes/no value as a bool (true, yes, on, 1)."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def login_failure(source: str, exc: KeystoneError) -> SourceUnavailable:
    """The source's error for a failed Keystone step. Refused credentials are SourceGone:
    Heat deletes a stack's user with the stack, so a server that outlived its stack asks
    again only hourly (a reload or restart asks at once, after an operator's fix)."""
    if exc.transient:
        return SourceUnavailable(source, exc.reason)
    return SourceGone(source, f"{exc.reason}: the stack and its user may have been deleted")
