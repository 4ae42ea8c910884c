"""guestagent.http against a real HTTP/1.1 server on loopback: kept-alive connections, a server
that drops them, cut bodies, timeouts, redirects, size limits, TLS, proxies, and no secret in
any message."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from guestagent import http
from guestagent.errors import TransportError
from tests.fakecloud import FakeCloud

REPO = Path(__file__).resolve().parents[1]


class Server:
    """Records (connection number, method, request target) of each request it reads."""

    def __init__(self):
        self.lock = threading.Condition()
        self.seen: list[tuple[int, str, str]] = []
        self.connections = 0
        self.closed = 0
        self.release = threading.Event()
        handler = type("H", (_Handler,), {"owner": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def wait_closed(self, count: int) -> None:
        with self.lock:
            assert self.lock.wait_for(lambda: self.closed >= count, 10), "server never closed"

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: Server

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with self.owner.lock:
            self.owner.connections += 1
            self.number = self.owner.connections

    def finish(self):
        super().finish()
        with self.owner.lock:
            self.owner.closed += 1
            self.owner.lock.notify_all()

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None,
               length: int | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.owner.lock:
            self.owner.seen.append((self.number, self.command, self.path))
        path = self.path.split("?")[0]
        if path.endswith("/ok"):
            self._reply(200, json.dumps({"got": body.decode(), "ua": self.headers["User-Agent"]})
                        .encode(), {"Content-Type": "application/json", "ETag": '"e1"'})
        elif path == "/once":  # answers, then drops the kept-alive connection without a word
            self._reply(200, b"once")
            self.close_connection = True
        elif path == "/moved":
            self._reply(302, headers={"Location": "/ok"})
        elif path == "/loop":
            self._reply(302, headers={"Location": "/loop"})
        elif path == "/big":
            self._reply(200, b"x" * 4096)
        elif path == "/cut":
            self._reply(200, b'{"half":', length=100)
            self.close_connection = True
        elif path == "/hang":
            self.owner.release.wait(30)
            self._reply(200, b"late")
        else:
            self._reply(404)

    do_POST = do_PUT = do_GET


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def test_requests_to_one_host_share_one_connection(server):
    first = http.request("GET", f"{server.url}/ok")
    second = http.request("PUT", f"{server.url}/ok", data=b"body")
    assert first.status_code == 200 and first.headers.get("etag") == '"e1"'
    assert second.json() == {"got": "body", "ua": "guestagent"}
    assert [number for number, _, _ in server.seen] == [server.seen[0][0]] * 2


def test_a_connection_the_server_dropped_is_replaced(server):
    assert http.request("GET", f"{server.url}/once").content == b"once"
    server.wait_closed(1)
    assert http.request("GET", f"{server.url}/ok").status_code == 200
    assert server.seen[0][0] != server.seen[1][0]


def test_a_body_cut_short_is_an_error_not_a_short_reply(server):
    with pytest.raises(TransportError, match="cut short") as err:
        http.request("GET", f"{server.url}/cut")
    assert err.value.kind == "ConnectionError"
    assert http.request("GET", f"{server.url}/ok").status_code == 200  # and nothing is stuck


def test_a_server_that_never_answers_times_out(server):
    with pytest.raises(TransportError) as err:
        http.request("GET", f"{server.url}/hang", timeout=(5.0, 0.3))
    assert err.value.kind == "ReadTimeout"


def test_refused_connection_names_the_cause_and_never_the_query():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as err:
        http.request("PUT", f"http://127.0.0.1:{port}/signal?temp_url_sig=SECRET", data=b"{}")
    assert err.value.kind == "ConnectionError"
    assert "SECRET" not in str(err.value) and "refused" in str(err.value).lower()


def test_get_follows_redirects_and_put_does_not(server):
    assert http.request("GET", f"{server.url}/moved").json()["ua"] == "guestagent"
    assert http.request("PUT", f"{server.url}/moved", data=b"{}").status_code == 302
    with pytest.raises(TransportError, match="TooManyRedirects"):
        http.request("GET", f"{server.url}/loop")


def test_a_body_over_the_limit_is_cut_at_the_limit_and_its_connection_dropped(server):
    reply = http.request("GET", f"{server.url}/big", max_body=1000)
    assert len(reply.content) == 1001  # one byte more than allowed: the caller refuses it
    assert http.request("GET", f"{server.url}/ok").status_code == 200
    assert server.seen[0][0] != server.seen[1][0]


def test_tls_is_verified_by_default_and_trusts_what_it_is_told(tmp_path, monkeypatch):
    cloud = FakeCloud(tls=True).start()
    cloud.set_metadata({"a": 1})
    try:
        with pytest.raises(TransportError) as err:
            http.request("GET", cloud.metadata_url)
        assert err.value.kind == "SSLError" and "certificate" in str(err.value)
        assert http.request("GET", cloud.metadata_url, verify=cloud.ca_file).json() == {"a": 1}
        assert http.request("GET", cloud.metadata_url, verify=False).json() == {"a": 1}
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", cloud.ca_file)
        assert http.request("GET", cloud.metadata_url).json() == {"a": 1}
        with pytest.raises(TransportError, match="SSLError"):
            http.request("GET", cloud.metadata_url, verify=str(tmp_path / "missing.pem"))
    finally:
        cloud.stop()


def _python(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_a_configured_proxy_carries_the_request(server):
    code = ("from guestagent import http\n"
            "print(http.request('GET', 'http://metadata.invalid/ok?sig=1').json()['ua'])\n")
    done = _python(code, http_proxy=server.url, HOME="/nonexistent")
    assert done.returncode == 0, done.stderr
    assert server.seen == [(server.seen[0][0], "GET", "http://metadata.invalid/ok?sig=1")]
    skipped = _python(code.replace("metadata.invalid", server.url.split("//")[1]),
                      http_proxy="http://127.0.0.1:9", no_proxy="127.0.0.1", HOME="/nonexistent")
    assert skipped.returncode == 0, skipped.stderr
    assert server.seen[-1][2] == "/ok?sig=1"  # no_proxy: straight to the server


def test_once_over_http_never_imports_requests(fakecloud, tmp_path):
    fakecloud.set_metadata({"deployments": []})
    code = ("import sys\nfrom guestagent import cli\n"
            f"code = cli.main(['--once', '--config', '/dev/null', '--state-dir', '{tmp_path}/s',"
            f" '--deployed-dir', '{tmp_path}/m', '--collectors', 'request',"
            f" '--request-metadata-url', '{fakecloud.metadata_url}'])\n"
            "print(code, 'requests' in sys.modules)\n")
    done = _python(code, HOME="/nonexistent")
    assert done.stdout.split() == ["0", "False"], done.stderr
