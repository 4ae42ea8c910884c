"""The one HTTP client: a shared `requests` session (connection reuse) with timeouts always set.

`requests` is imported on first use: a pass that touches no network pays nothing for it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
        import requests

        sess = requests.Session()
        sess.headers["User-Agent"] = USER_AGENT
        # Without proxy or netrc settings, skip requests' per-request scan of the environment
        # (most of an idle poll's CPU time); the CA bundle variables are honoured in request().
        sess.trust_env = _environment_matters()
        _local.session = sess
    return sess


def _environment_matters() -> bool:
    import urllib.request

    return bool(urllib.request.getproxies() or os.environ.get("NETRC")
                or os.path.exists(os.path.expanduser("~/.netrc")))


def request(method: str, url: str, *, timeout=DEFAULT_TIMEOUT, **kwargs) -> requests.Response:
    """Send one request through the shared session; never without a timeout."""
    if kwargs.get("verify", True) is True:
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            kwargs["verify"] = bundle
    return session().request(method, url, timeout=timeout, **kwargs)


def redact_url(url: str) -> str:
    """A URL fit for logs: no query string (pre-signed URLs carry their signature there)."""
    return url.split("?", 1)[0] + ("?<redacted>" if "?" in url else "")
