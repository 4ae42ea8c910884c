"""Proxies and netrc credentials from the environment, as `requests` honoured them: `http_proxy`,
`https_proxy` (a CONNECT tunnel), `no_proxy`, `NETRC` or ~/.netrc. guestagent.http asks here."""

from __future__ import annotations

import base64
import os
from urllib.parse import urlsplit

_configured: bool | None = None


def configured() -> bool:
    """True when the environment sets a proxy or a netrc file (checked once per process)."""
    global _configured
    if _configured is None:
        proxies = any(key.lower().endswith("_proxy") and key.lower() != "no_proxy" and value
                      for key, value in os.environ.items())
        _configured = bool(proxies or os.environ.get("NETRC")
                           or os.path.exists(os.path.expanduser("~/.netrc")))
    return _configured


def proxy_for(parts):
    """The split proxy URL for this request's scheme and host, or None (no_proxy, or none)."""
    import urllib.request

    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    if urllib.request.proxy_bypass_environment(host):
        return None
    proxy = urllib.request.getproxies_environment().get(parts.scheme)
    if not proxy:
        return None
    try:
        split = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        return split if split.hostname and split.port != 0 else None
    except ValueError:
        return None


def netrc_auth(host: str) -> str | None:
    """An Authorization header from the netrc entry for `host`, if any."""
    import netrc

    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        found = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    return basic(found[0], found[2] or "") if found else None


def basic(user: str, password: str) -> str:
    """An HTTP basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
