"""The one HTTP client: a shared `requests` session (connection reuse) with timeouts always set."""

from __future__ import annotations

import logging
import threading

import requests

# (connect, read) seconds; every request the agent makes has a bound.
DEFAULT_TIMEOUT = (10.0, 60.0)
USER_AGENT = "guestagent"

_local = threading.local()

# urllib3 logs every request line at DEBUG, query string included: that is where pre-signed
# URLs (CFN signature, Swift temp_url_sig) carry their secret. Never let it through.
logging.getLogger("urllib3").setLevel(logging.WARNING)


def session() -> requests.Session:
    """This thread's session: kept alive between polls so TCP and TLS are reused."""
    sess = getattr(_local, "session", None)
    if sess is None:
        sess = requests.Session()
        sess.headers["User-Agent"] = USER_AGENT
        _local.session = sess
    return sess


def request(method: str, url: str, *, timeout=DEFAULT_TIMEOUT, **kwargs) -> requests.Response:
    """Send one request through the shared session; never without a timeout."""
    return session().request(method, url, timeout=timeout, **kwargs)


def redact_url(url: str) -> str:
    """A URL fit for logs: no query string (pre-signed URLs carry their signature there)."""
    return url.split("?", 1)[0] + ("?<redacted>" if "?" in url else "")
