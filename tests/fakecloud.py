"""A wire-faithful fake OpenStack on loopback for tests: Keystone v3, Heat, heat-api-cfn, a Swift
temp URL store, a plain metadata URL and Zaqar v2, speaking SPEC.md exactly.

Every request is recorded (`cloud.requests`) and every delivered signal too (`cloud.signals`,
and `on_signal` is called with it, as Heat acts on one); tests wait on recorded state with
`cloud.wait_for(predicate)`. Faults can be injected per path
prefix: an HTTP status, a hang longer than the client's timeout, a connection cut mid-body, a
200 with truncated JSON or with an HTML page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from requests.structures import CaseInsensitiveDict

REGION = "RegionOne"
UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}
# heat-api-cfn (through keystone's ec2 token check) refuses timestamps older than this.
EC2_TIMESTAMP_TTL = 15 * 60


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict
    headers: CaseInsensitiveDict
    body: bytes
    raw_path: str = ""
    at: float = field(default_factory=time.time)  # when it arrived (benches bin by second)

    @property
    def json(self):
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class _Fault:
    kind: str  # status | hang | cut | truncated | html | hold
    status: int = 500
    times: int | None = None  # None: until recover()
    seconds: float = 0.0
    skip: int = 0  # let this many matching requests through first


@dataclass
class _Token:
    user_id: str
    project_id: str
    expires: float


@dataclass
class _Object:
    data: bytes
    etag: str
    modified: float


@dataclass
class _Message:
    id: str
    body: object
    ttl: int
    client_id: str
    created: float
    claim_id: str | None = None
    claim_expires: float = 0.0


@dataclass
class FakeCloud:
    """The fake cloud; `start()` it (the `fakecloud` fixture does), `stop()` it afterwards."""

    token_lifetime: float = 3600.0
    tls: bool = False  # serve HTTPS with a fresh self-signed certificate (see `ca_file`)
    pki: object = None  # with tls: a tests.support.pki.PrivateCA whose certificate to present
    # Rewrites each token reply (the body as a dict) before it is sent: a dict, bytes or str.
    token_hook: object = None
    # Judge If-None-Match and If-Modified-Since each on its own, as Swift does (not RFC 7232's
    # precedence), Last-Modified at one-second resolution.
    swift_conditionals: bool = False
    # Called (transport, target, body) on the request's thread after a signal is recorded,
    # before the reply: what Heat does next (a chain's next deployment). Keep it short.
    on_signal: object = None
    requests: list = field(default_factory=list)
    signals: list = field(default_factory=list)
    logins: int = 0
    metadata_gets: int = 0

    def __post_init__(self):
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._users: dict[str, tuple[str, str]] = {}
        self._tokens: dict[str, _Token] = {}
        self._server_metadata: dict[tuple[str, str, str], dict] = {}
        self._ec2: dict[str, str] = {}
        self._faults: dict[str, _Fault] = {}
        self._objects: dict[str, _Object] = {}
        self._metadata: _Object | None = None
        self._queues: dict[str, list[_Message]] = {}
        self.temp_url_key = uuid.uuid4().hex
        self.signal_access, self.signal_secret = uuid.uuid4().hex, uuid.uuid4().hex
        self._ec2[self.signal_access] = self.signal_secret
        self.project_id = uuid.uuid4().hex
        self._httpd: ThreadingHTTPServer | None = None
        self._released = threading.Event()
        self.held = 0

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeCloud:
        handler = type("Handler", (_Handler,), {"cloud": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if self.tls:
            self._httpd.socket = self._tls_context().wrap_socket(self._httpd.socket,
                                                                 server_side=True)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def _tls_context(self):
        import ssl
        import subprocess
        import tempfile

        if self.pki is not None:
            self.ca_file = str(self.pki.ca)
            return self.pki.server_context()

        self._tls_dir = tempfile.TemporaryDirectory(prefix="fakecloud-tls-")
        cert, key = f"{self._tls_dir.name}/cert.pem", f"{self._tls_dir.name}/key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        self.ca_file = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()  # returns within serve_forever's 50 ms poll
            self._httpd.server_close()
        if self.tls and self.pki is None:
            self._tls_dir.cleanup()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Block until predicate() is true (re-checked on every request/state change)."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout=timeout):
                raise TimeoutError(f"fakecloud: condition not met within {timeout}s")
        return True

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _signalled(self, transport: str, target: str, body) -> None:
        with self._cond:
            self.signals.append((transport, target, body))
            self._cond.notify_all()
        if self.on_signal is not None:
            self.on_signal(transport, target, body)

    # ---- keystone --------------------------------------------------------------------------

    def add_user(self, user_id: str, password: str, project_id: str | None = None) -> None:
        self._users[user_id] = (password, project_id or self.project_id)

    def revoke_tokens(self) -> None:
        with self._cond:
            self._tokens.clear()

    def _token_ok(self, token: str | None) -> _Token | None:
        with self._cond:
            found = self._tokens.get(token or "")
        if found is None or found.expires <= time.time():
            return None
        return found

    # ---- heat and cfn ----------------------------------------------------------------------

    def set_server_metadata(self, stack_name: str, stack_id: str, resource: str, doc: dict) -> None:
        with self._cond:
            self._server_metadata[(stack_name, stack_id, resource)] = doc
            self._cond.notify_all()

    def add_ec2_credentials(self, access: str, secret: str) -> None:
        self._ec2[access] = secret

    def heat_url(self, project_id: str | None = None) -> str:
        return f"{self.url}/heat/v1/{project_id or self.project_id}"

    def cfn_signal_url(self, name: str, stack_name: str = "stack",
                       stack_id: str = "00000000-0000-0000-0000-000000000001") -> str:
        """A pre-signed heat-api-cfn signal URL for resource `name` (signed for POST)."""
        arn = (f"arn:openstack:heat::{self.project_id}:stacks/{stack_name}/{stack_id}"
               f"/resources/{name}")
        path = "/cfn/v1/signal/" + quote(arn, safe="")
        params = {"Timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "SignatureMethod": "HmacSHA256", "AWSAccessKeyId": self.signal_access,
                  "SignatureVersion": "2"}
        host = urlsplit(self.url).netloc
        params["Signature"] = ec2_signature(self.signal_secret, "POST", host, path, params)
        return self.url + path + "?" + "&".join(f"{k}={quote(v, safe='')}"
                                                 for k, v in params.items())

    # ---- swift temp URLs and the plain metadata URL ---------------------------------------

    def temp_url(self, name: str, method: str = "PUT", lifetime: float = 86400) -> str:
        path = f"/swift/v1/AUTH_{self.project_id}/c/{name}"
        expires = int(time.time() + lifetime)
        sig = hmac.new(self.temp_url_key.encode(), f"{method}\n{expires}\n{path}".encode(),
                       hashlib.sha1).hexdigest()
        return f"{self.url}{path}?temp_url_sig={sig}&temp_url_expires={expires}"

    def put_object(self, name: str, data: bytes | dict) -> None:
        path = f"/swift/v1/AUTH_{self.project_id}/c/{name}"
        with self._cond:
            self._objects[path] = _object(data)
            self._cond.notify_all()

    def get_object(self, name: str) -> bytes | None:
        found = self._objects.get(f"/swift/v1/AUTH_{self.project_id}/c/{name}")
        return None if found is None else found.data

    def set_metadata(self, doc: dict | bytes) -> None:
        with self._cond:
            self._metadata = _object(doc)
            self._cond.notify_all()

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/metadata"

    # ---- zaqar -----------------------------------------------------------------------------

    def zaqar_url(self) -> str:
        return f"{self.url}/zaqar"

    def post_message(self, queue: str, body, ttl: int = 3600, client_id: str = "heat") -> str:
        """Post as Heat does (a different Client-ID from the agent's)."""
        msg = _Message(uuid.uuid4().hex, body, ttl, client_id, time.time())
        with self._cond:
            self._queues.setdefault(queue, []).append(msg)
            self._cond.notify_all()
        return msg.id

    def expire_claims(self) -> None:
        """Let every Zaqar claim run out, as if its TTL had passed."""
        with self._cond:
            for msgs in self._queues.values():
                for m in msgs:
                    m.claim_expires = 0.0

    def queue(self, queue: str) -> list:
        """Live message bodies of a queue, oldest first."""
        with self._cond:
            return [m.body for m in self._live(queue)]

    def _live(self, queue: str) -> list[_Message]:
        now = time.time()
        msgs = [m for m in self._queues.get(queue, []) if m.created + m.ttl > now]
        self._queues[queue] = msgs
        return msgs

    # ---- faults ----------------------------------------------------------------------------

    def fail(self, path_prefix: str, status: int = 500, times: int | None = None) -> None:
        """Answer `status` to requests under path_prefix, `times` times or until recover()."""
        self._faults[path_prefix] = _Fault("status", status=status, times=times)

    def hang(self, path_prefix: str, seconds: float = 30.0, times: int | None = None) -> None:
        """Hold the reply `seconds` (longer than the client's read timeout) before answering."""
        self._faults[path_prefix] = _Fault("hang", seconds=seconds, times=times)

    def cut(self, path_prefix: str, times: int | None = None) -> None:
        """Announce a long body, send a few bytes, close the connection."""
        self._faults[path_prefix] = _Fault("cut", times=times)

    def garble(self, path_prefix: str, kind: str = "truncated", times: int | None = None) -> None:
        """Answer 200 with truncated JSON (`truncated`) or an HTML page (`html`)."""
        if kind not in ("truncated", "html"):
            raise ValueError(kind)
        self._faults[path_prefix] = _Fault(kind, times=times)

    def hold(self, path_prefix: str, times: int | None = 1, after: int = 0) -> None:
        """Keep requests in flight (counted in `held`) until release(), after letting `after`
        through; then a request whose client has hung up meanwhile is dropped unprocessed, as
        a front proxy drops a request whose client went away before it was forwarded."""
        self._released.clear()
        self._faults[path_prefix] = _Fault("hold", times=times, skip=after)

    def release(self) -> None:
        """Let held requests go on."""
        self._released.set()

    def recover(self, path_prefix: str | None = None) -> None:
        """Remove the fault at path_prefix (all faults when None)."""
        if path_prefix is None:
            self._faults.clear()
        else:
            self._faults.pop(path_prefix, None)

    def _fault_for(self, path: str) -> _Fault | None:
        with self._cond:
            for prefix, fault in sorted(self._faults.items(), key=lambda kv: -len(kv[0])):
                if path.startswith(prefix):
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            del self._faults[prefix]
                    return fault
        return None


def ec2_signature(secret: str, verb: str, host: str, path: str, params: dict) -> str:
    """AWS signature version 2 (HmacSHA256) as heat-api-cfn / keystone ec2tokens check it."""
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(str(params[k]), safe='-_.~')}"
                     for k in sorted(params) if k != "Signature")
    text = "\n".join([verb, host.lower(), path, query])
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _object(data) -> _Object:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return _Object(raw, '"' + hashlib.md5(raw).hexdigest() + '"', float(int(time.time())))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Reply(Exception):
    def __init__(self, status: int, body=None, headers: dict | None = None,
                 content_type: str = "application/json"):
        self.status, self.body, self.headers, self.content_type = status, body, headers or {}, content_type


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms stalls
    cloud: FakeCloud

    def log_message(self, fmt, *args):  # quiet: tests read cloud.requests instead
        pass

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _handle(self):
        cloud = self.cloud
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rec = Recorded(self.command, unquote(split.path), dict(parse_qsl(split.query)),
                       CaseInsensitiveDict(self.headers.items()), body, raw_path=split.path)
        with cloud._cond:
            cloud.requests.append(rec)
            cloud._cond.notify_all()
        self.rec = rec
        fault = cloud._fault_for(rec.path)
        try:
            if fault is not None and fault.kind == "hang":
                cloud._stopping.wait(fault.seconds)
            if fault is not None and fault.kind == "hold":
                with cloud._cond:
                    cloud.held += 1
                    cloud._cond.notify_all()
                while not (cloud._released.wait(0.05) or cloud._stopping.is_set()):
                    pass
                if self._client_gone():
                    self.close_connection = True
                    return
            if fault is not None and fault.kind == "status":
                raise _Reply(fault.status, {"error": {"code": fault.status, "title": "Injected",
                                                      "message": "injected fault"}})
            if fault is not None and fault.kind == "cut":
                self._cut()
                return
            if fault is not None and fault.kind == "truncated":
                raise _Reply(200, b'{"metadata": {"deployments": [{"id": "trunc')
            if fault is not None and fault.kind == "html":
                raise _Reply(200, b"<html><body><h1>Service Unavailable</h1></body></html>",
                             content_type="text/html")
            self._route(rec)
            raise _Reply(404, {"error": {"code": 404, "title": "Not Found",
                                         "message": f"no route for {rec.method} {rec.path}"}})
        except _Reply as reply:
            try:
                self._send(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout test): expected
        finally:
            cloud._changed()

    def _client_gone(self) -> bool:
        try:
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False  # connected, nothing more sent: still waiting for our answer
        except OSError:
            return True

    def _cut(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "4096")
        self.end_headers()
        self.wfile.write(b'{"metadata": {"depl')
        self.wfile.flush()
        self.close_connection = True

    def _send(self, reply: _Reply):
        body = reply.body
        if body is None and reply.status in (204, 304):
            data = b""
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        self.send_response(reply.status)
        if data or reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # ---- routing ---------------------------------------------------------------------------

    def _route(self, rec: Recorded):
        # Split before unquoting: a CFN signal path carries an ARN with encoded slashes.
        parts = [unquote(p) for p in rec.raw_path.strip("/").split("/")]
        head = parts[0] if parts else ""
        if head == "identity":
            self._keystone(rec, parts[1:])
        elif head == "heat":
            self._heat(rec, parts[1:])
        elif head == "cfn":
            self._cfn(rec, parts[1:])
        elif head == "swift":
            self._swift(rec)
        elif head == "metadata" and len(parts) == 1:
            self._metadata(rec)
        elif head == "zaqar":
            self._zaqar(rec, parts[1:])

    def _authenticated(self, rec: Recorded) -> _Token:
        token = self.cloud._token_ok(rec.headers.get("X-Auth-Token"))
        if token is None:
            raise _Reply(401, UNAUTHORIZED,
                         {"WWW-Authenticate": f'Keystone uri="{self.cloud.auth_url}"'})
        return token

    # Keystone v3 ----------------------------------------------------------------------------

    def _keystone(self, rec, parts):
        cloud = self.cloud
        if rec.method == "GET" and parts in (["v3"], []):
            raise _Reply(200, {"version": {"id": "v3.14", "status": "stable",
                                           "updated": "2020-04-07T00:00:00Z",
                                           "links": [{"rel": "self", "href": cloud.auth_url + "/"}],
                                           "media-types": [{"base": "application/json",
                                                            "type": "application/vnd.openstack.identity-v3+json"}]}})
        if rec.method != "POST" or parts != ["v3", "auth", "tokens"]:
            return
        try:
            auth = rec.json["auth"]
            assert auth["identity"]["methods"] == ["password"]
            user = auth["identity"]["password"]["user"]
            user_id, password = user["id"], user["password"]
            project_id = auth["scope"]["project"]["id"]
        except (TypeError, KeyError, AssertionError):
            raise _Reply(400, {"error": {"code": 400, "title": "Bad Request",
                                         "message": "Expecting to find auth in request body."}}
                         ) from None
        known = cloud._users.get(user_id)
        if known is None or not hmac.compare_digest(known[0], password) or known[1] != project_id:
            raise _Reply(401, UNAUTHORIZED)
        token_id = "gAAAAA" + uuid.uuid4().hex + uuid.uuid4().hex
        now = time.time()
        with cloud._cond:
            cloud._tokens[token_id] = _Token(user_id, project_id, now + cloud.token_lifetime)
            cloud.logins += 1
        domain = {"id": "default", "name": "Default"}
        body = {"token": {
            "methods": ["password"],
            "user": {"domain": domain, "id": user_id, "name": user_id,
                     "password_expires_at": None},
            "audit_ids": [base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode()],
            "expires_at": _iso(now + cloud.token_lifetime),
            "issued_at": _iso(now),
            "project": {"domain": domain, "id": project_id, "name": project_id},
            "is_domain": False,
            "roles": [{"id": "r1", "name": "member"}],
            "catalog": [
                _service("orchestration", "heat", f"{cloud.url}/heat/v1/{project_id}"),
                _service("messaging", "zaqar", f"{cloud.url}/zaqar"),
                _service("cloudformation", "heat-cfn", f"{cloud.url}/cfn/v1"),
                _service("identity", "keystone", cloud.auth_url),
            ],
        }}
        if cloud.token_hook is not None:
            body = cloud.token_hook(body)
        raise _Reply(201, body, {"X-Subject-Token": token_id})

    # Heat -----------------------------------------------------------------------------------

    def _heat(self, rec, parts):
        # v1/<project>/stacks/<name>/<id>/resources/<res>/(metadata|signal)
        if len(parts) != 8 or parts[0] != "v1" or parts[2] != "stacks" or parts[5] != "resources":
            return
        token = self._authenticated(rec)
        _, project, _, stack_name, stack_id, _, resource, action = parts
        if project != token.project_id:
            raise _Reply(403, {"error": {"code": 403, "title": "Forbidden",
                                         "message": "project mismatch"}})
        key = (stack_name, stack_id, resource)
        if action == "metadata" and rec.method == "GET":
            doc = self.cloud._server_metadata.get(key)
            if doc is None:
                raise _Reply(404, {"error": {"code": 404, "title": "Not Found",
                                             "message": f"resource {resource} not found"}})
            raise _Reply(200, {"metadata": doc})
        if action == "signal" and rec.method == "POST":
            self._signal("HEAT_SIGNAL", f"{stack_name}/{stack_id}/{resource}", rec)
            raise _Reply(200, None)

    def _signal(self, transport: str, target: str, rec: Recorded):
        self.cloud._signalled(transport, target, rec.json if rec.json is not None else rec.body)

    # heat-api-cfn ---------------------------------------------------------------------------

    def _cfn(self, rec, parts):
        if parts[:1] != ["v1"]:
            return
        if rec.method == "POST" and len(parts) == 3 and parts[1] == "signal":
            self._check_ec2(rec, rec.raw_path)
            arn = parts[2]
            self._signal("CFN_SIGNAL", arn.rsplit("/", 1)[-1], rec)
            raise _Reply(200, b"", content_type="text/plain")
        if rec.method == "GET" and len(parts) == 1:
            if rec.query.get("Action") != "DescribeStackResource":
                raise _cfn_error(400, "InvalidAction", "unsupported action")
            self._check_ec2(rec, rec.raw_path)
            stack, resource = rec.query.get("StackName"), rec.query.get("LogicalResourceId")
            for (name, sid, res), doc in self.cloud._server_metadata.items():
                if stack in (name, sid, f"{name}/{sid}") and res == resource:
                    raise _Reply(200, _describe_xml(name, sid, res, doc),
                                 content_type="application/xml")
            raise _cfn_error(404, "ResourceNotFound", f"resource {resource} not found")

    def _check_ec2(self, rec: Recorded, path: str):
        q = rec.query
        secret = self.cloud._ec2.get(q.get("AWSAccessKeyId", ""))
        if (secret is None or q.get("SignatureVersion") != "2"
                or q.get("SignatureMethod") != "HmacSHA256" or "Signature" not in q):
            raise _cfn_error(403, "SignatureError", "signature missing or unknown access key")
        host = rec.headers.get("Host", "")
        want = ec2_signature(secret, rec.method, host, path, q)
        if not hmac.compare_digest(want, q["Signature"]):
            raise _cfn_error(403, "SignatureError", "signature does not match")
        stamp = q.get("Timestamp")
        if stamp:
            when = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
            if abs((datetime.now(timezone.utc) - when).total_seconds()) > EC2_TIMESTAMP_TTL:
                raise _cfn_error(403, "SignatureError", "timestamp out of range")

    # Swift temp URLs --------------------------------------------------------------------------

    def _swift(self, rec):
        cloud = self.cloud
        sig, expires = rec.query.get("temp_url_sig", ""), rec.query.get("temp_url_expires", "0")
        methods = ("GET", "HEAD", "PUT") if rec.method == "HEAD" else (rec.method,)
        ok = expires.isdigit() and int(expires) > time.time() and any(
            hmac.compare_digest(sig, hmac.new(cloud.temp_url_key.encode(),
                                              f"{m}\n{expires}\n{rec.path}".encode(),
                                              hashlib.sha1).hexdigest()) for m in methods)
        if not ok:
            raise _Reply(401, b"<html><h1>Unauthorized</h1><p>Temp URL invalid</p></html>",
                         content_type="text/html")
        if rec.method == "PUT":
            with cloud._cond:
                cloud._objects[rec.path] = _object(rec.body)
            self._signal("TEMP_URL_SIGNAL", rec.path.rsplit("/", 1)[-1], rec)
            raise _Reply(201, b"", {"ETag": cloud._objects[rec.path].etag.strip('"')},
                         content_type="text/html")
        if rec.method in ("GET", "HEAD"):
            self._conditional(rec, cloud._objects.get(rec.path))

    def _conditional(self, rec: Recorded, obj: _Object | None):
        if obj is None:
            raise _Reply(404, b"<html><h1>Not Found</h1></html>", content_type="text/html")
        headers = {"ETag": obj.etag, "Last-Modified": formatdate(obj.modified, usegmt=True)}
        inm, ims = rec.headers.get("If-None-Match"), rec.headers.get("If-Modified-Since")
        if self.cloud.swift_conditionals:
            # Swift checks each validator on its own, Last-Modified at one-second resolution.
            if inm is not None and inm.strip() in (obj.etag, obj.etag.strip('"'), "*"):
                raise _Reply(304, None, headers)
            if ims and parsedate_to_datetime(ims).timestamp() >= int(obj.modified):
                raise _Reply(304, None, headers)
            raise _Reply(200, obj.data, headers)
        if inm is not None:
            if inm.strip() in (obj.etag, obj.etag.strip('"'), "*"):
                raise _Reply(304, None, headers)
        elif ims:
            try:
                if parsedate_to_datetime(ims).timestamp() >= obj.modified:
                    raise _Reply(304, None, headers)
            except (TypeError, ValueError):
                pass
        raise _Reply(200, obj.data, headers)

    def _metadata(self, rec):
        if rec.method != "GET":
            raise _Reply(405, {"error": "method not allowed"})
        with self.cloud._cond:
            self.cloud.metadata_gets += 1
        self._conditional(rec, self.cloud._metadata)

    # Zaqar v2 ---------------------------------------------------------------------------------

    def _zaqar(self, rec, parts):
        cloud = self.cloud
        if len(parts) < 4 or parts[0] != "v2" or parts[1] != "queues":
            return
        self._authenticated(rec)
        client_id = rec.headers.get("Client-ID")
        if not client_id:
            raise _Reply(400, {"title": "Missing header", "description":
                               "The Client-ID header is required."})
        if not rec.headers.get("X-Project-Id"):
            raise _Reply(400, {"title": "Missing header", "description":
                               "The X-PROJECT-ID header is required."})
        queue, what, rest = parts[2], parts[3], parts[4:]
        now = time.time()
        with cloud._cond:
            live = cloud._live(queue)
            if what == "messages" and not rest and rec.method == "POST":
                try:
                    new = [_Message(uuid.uuid4().hex, m["body"], int(m.get("ttl", 3600)),
                                    client_id, now) for m in rec.json["messages"]]
                except (TypeError, KeyError, ValueError):
                    raise _Reply(400, {"title": "Invalid API request",
                                       "description": "Missing \"messages\" or \"body\""}
                                 ) from None
                live.extend(new)
                for m in new:  # the condition's lock is reentrant: on_signal may set state
                    cloud._signalled("ZAQAR_SIGNAL", queue, m.body)
                raise _Reply(201, {"resources": [f"/v2/queues/{queue}/messages/{m.id}"
                                                 for m in new]})
            if what == "messages" and not rest and rec.method == "GET":
                echo = rec.query.get("echo", "false").lower() == "true"
                claimed = rec.query.get("include_claimed", "false").lower() == "true"
                limit = int(rec.query.get("limit", "10"))
                msgs = [m for m in live if (echo or m.client_id != client_id)
                        and (claimed or m.claim_expires <= now)][:limit]
                raise _Reply(200, {"messages": [_msg(queue, m, now) for m in msgs],
                                   "links": []})
            if what == "messages" and len(rest) == 1 and rec.method == "DELETE":
                msg = next((m for m in live if m.id == rest[0]), None)
                if msg is not None:
                    held = msg.claim_id is not None and msg.claim_expires > now
                    if held and rec.query.get("claim_id") != msg.claim_id:
                        raise _Reply(403, {"title": "Unable to delete",
                                           "description": "This message is claimed; it cannot "
                                                          "be deleted without a valid claim ID."})
                    live.remove(msg)
                raise _Reply(204)
            if what == "claims" and not rest and rec.method == "POST":
                spec = rec.json or {}
                ttl, grace = int(spec.get("ttl", 300)), int(spec.get("grace", 60))
                limit = int(rec.query.get("limit", "10"))
                free = [m for m in live if m.claim_expires <= now][:limit]
                if not free:
                    raise _Reply(204)
                claim_id = uuid.uuid4().hex
                for m in free:
                    m.claim_id, m.claim_expires = claim_id, now + ttl
                    m.ttl = max(m.ttl, int(now - m.created) + ttl + grace)
                raise _Reply(201, {"messages": [_msg(queue, m, now, claim_id) for m in free]},
                             {"Location": f"/v2/queues/{queue}/claims/{claim_id}"})
            if what == "claims" and len(rest) == 1 and rec.method == "DELETE":
                for m in live:
                    if m.claim_id == rest[0]:
                        m.claim_id, m.claim_expires = None, 0.0
                raise _Reply(204)


def _service(service_type: str, name: str, url: str) -> dict:
    return {"id": uuid.uuid5(uuid.NAMESPACE_URL, url).hex, "type": service_type, "name": name,
            "endpoints": [{"id": uuid.uuid5(uuid.NAMESPACE_URL, url + i).hex, "interface": i,
                           "region_id": REGION, "region": REGION, "url": url}
                          for i in ("public", "internal", "admin")]}


def _msg(queue: str, m: _Message, now: float, claim_id: str | None = None) -> dict:
    href = f"/v2/queues/{queue}/messages/{m.id}" + (f"?claim_id={claim_id}" if claim_id else "")
    out = {"id": m.id, "href": href, "ttl": m.ttl, "age": int(now - m.created), "body": m.body}
    if m.claim_id and m.claim_expires > now:
        out["claim_id"] = m.claim_id
    return out


def _cfn_error(status: int, code: str, message: str) -> _Reply:
    xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code>"
           f"<Message>{escape(message)}</Message></Error></ErrorResponse>")
    return _Reply(status, xml, content_type="application/xml")


def _describe_xml(stack_name: str, stack_id: str, resource: str, doc: dict) -> str:
    arn = f"arn:openstack:heat::tenant:stacks/{stack_name}/{stack_id}"
    return ("<DescribeStackResourceResponse><DescribeStackResourceResult><StackResourceDetail>"
            f"<StackId>{escape(arn)}</StackId><StackName>{escape(stack_name)}</StackName>"
            f"<LogicalResourceId>{escape(resource)}</LogicalResourceId>"
            f"<PhysicalResourceId>{uuid.uuid5(uuid.NAMESPACE_URL, arn)}</PhysicalResourceId>"
            "<ResourceType>OS::Nova::Server</ResourceType>"
            f"<LastUpdatedTimestamp>{_iso(time.time())}</LastUpdatedTimestamp>"
            "<ResourceStatus>CREATE_COMPLETE</ResourceStatus>"
            f"<Metadata>{escape(json.dumps(doc))}</Metadata>"
            "</StackResourceDetail></DescribeStackResourceResult></DescribeStackResourceResponse>")
