"""Keystone v3 password login with token reuse, shared by the heat and zaqar sources and signals.

Built on keystoneauth1 (imported only here, only when used): it keeps the
token until shortly before it expires, and on a 401 it logs in once more
and retries the request, which is exactly the reuse SPEC 2.4 asks for.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guestagent import http
from guestagent.errors import KeystoneError, TransportError

if TYPE_CHECKING:
    import requests

_clients: dict[tuple, "KeystoneClient"] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class Credentials:
    """What a v3 password login needs (SPEC 2.4)."""

    auth_url: str
    user_id: str
    password: str
    project_id: str
    region_name: str | None = None
    verify: bool | str = True

    @property
    def v3_url(self) -> str:
        url = self.auth_url.rstrip("/")
        return url if url.endswith("/v3") else url + "/v3"

    def cache_key(self) -> tuple:
        secret = hashlib.sha256(self.password.encode()).hexdigest()
        return (self.v3_url, self.user_id, self.project_id, self.region_name, secret,
                str(self.verify))


class KeystoneClient:
    """One logged-in identity: the endpoint catalog, and authenticated requests."""

    def __init__(self, creds: Credentials):
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        self.creds = creds
        self._endpoints: dict[tuple[str, str], str] = {}
        auth = v3.Password(auth_url=creds.v3_url, user_id=creds.user_id,
                           password=creds.password, project_id=creds.project_id)
        self._session = ks_session.Session(auth=auth, verify=creds.verify,
                                           session=http.session(), timeout=http.DEFAULT_TIMEOUT[1])

    def endpoint(self, service_type: str, interface: str = "public") -> str:
        """The catalog URL of `service_type` (filtered by region when one is set).

        Looked up once per client: endpoints do not move while the credentials stay the same,
        and asking keystoneauth each time costs extra logins when a token is near expiry.
        """
        from keystoneauth1 import exceptions as ks_exc

        key = (service_type, interface)
        if key in self._endpoints:
            return self._endpoints[key]
        try:
            access = self._session.auth.get_access(self._session)
            url = access.service_catalog.url_for(service_type=service_type, interface=interface,
                                                 region_name=self.creds.region_name)
        except ks_exc.EndpointNotFound:
            url = None
        except ks_exc.ClientException as exc:
            raise _login_error(self.creds, exc) from exc
        if not url:
            raise KeystoneError(f"no {interface} {service_type} endpoint in the "
                                f"catalog (region {self.creds.region_name or 'any'})")
        self._endpoints[key] = url.rstrip("/")
        return self._endpoints[key]

    def token(self) -> tuple[str, float]:
        """A valid token and its expiry (epoch seconds): the one in hand, or a new login when it
        is near its end (for the zaqar source's websocket, which authenticates with a token)."""
        from keystoneauth1 import exceptions as ks_exc

        try:
            access = self._session.auth.get_access(self._session)
        except ks_exc.ClientException as exc:
            raise _login_error(self.creds, exc) from exc
        return access.auth_token, access.expires.timestamp()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """An authenticated request; a 401 triggers one re-login and one retry."""
        from keystoneauth1 import exceptions as ks_exc

        try:
            return self._session.request(url, method, raise_exc=False, log=False, **kwargs)
        except ks_exc.ConnectionError as exc:
            raise TransportError("ConnectionError", http.brief_error(exc)) from exc
        except ks_exc.ClientException as exc:
            raise _login_error(self.creds, exc) from exc


def client(creds: Credentials) -> KeystoneClient:
    """The shared client for these credentials, so the token is reused across polls."""
    key = creds.cache_key()
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = KeystoneClient(creds)
        return found


def _login_error(creds: Credentials, exc: Exception) -> KeystoneError:
    from keystoneauth1 import exceptions as ks_exc

    refused = isinstance(exc, (ks_exc.Unauthorized, ks_exc.Forbidden, ks_exc.NotFound))
    return KeystoneError(f"login at {creds.v3_url} as user {creds.user_id} failed: "
                         f"{type(exc).__name__}: {http.brief_error(exc)}", transient=not refused)
