"""HTTPS through a proxy from the environment: a CONNECT tunnel (a real one, on loopback) to a
cloud whose certificate a private CA signed, trusted through the system store stand-in; the
proxy's own credentials go to the proxy only, and no_proxy still goes direct."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.fakecloud import FakeCloud
from tests.support.pki import make_ca

REPO = Path(__file__).resolve().parents[1]


class ConnectProxy:
    """Answers CONNECT host:port with 200 and then copies bytes both ways."""

    def __init__(self):
        self.seen: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://pxuser:pxpass@127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        self.seen.append(head.decode("latin-1"))
        host, port = head.split(b" ", 2)[1].decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def stop(self):
        self._sock.close()


def _pipe(src, dst):
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def tls_cloud(tmp_path):
    ca = make_ca(tmp_path / "pki")
    cloud = FakeCloud(tls=True, pki=ca).start()
    cloud.set_metadata({"via": "tunnel"})
    try:
        yield cloud
    finally:
        cloud.stop()


def _get(url: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")
             and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
                           "SSL_CERT_DIR")}
    code = f"from guestagent import http\nprint(http.request('GET', {url!r}).json()['via'])\n"
    return subprocess.run([sys.executable, "-c", code], env={**clean, "HOME": "/nonexistent",
                                                             **env},
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_https_goes_through_a_connect_tunnel_with_the_same_trust(tls_cloud, tmp_path):
    proxy = ConnectProxy()
    try:
        done = _get(tls_cloud.metadata_url, https_proxy=proxy.url,
                    SSL_CERT_FILE=tls_cloud.ca_file, SSL_CERT_DIR=str(tmp_path))
        assert done.returncode == 0 and done.stdout.strip() == "tunnel", done.stderr
        port = tls_cloud.url.rsplit(":", 1)[1]
        assert proxy.seen[0].startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.")
        assert "Proxy-Authorization: Basic cHh1c2VyOnB4cGFzcw==" in proxy.seen[0]
        metadata = [r for r in tls_cloud.requests if r.path == "/metadata"]
        assert len(metadata) == 1 and "Proxy-Authorization" not in metadata[0].headers

        refused = _get(tls_cloud.metadata_url, https_proxy=proxy.url)  # CA not in the store
        assert refused.returncode != 0 and "certificate verify failed" in refused.stderr

        direct = _get(tls_cloud.metadata_url, https_proxy="http://127.0.0.1:9",
                      no_proxy="127.0.0.1", SSL_CERT_FILE=tls_cloud.ca_file,
                      SSL_CERT_DIR=str(tmp_path))
        assert direct.returncode == 0, direct.stderr
        assert len(proxy.seen) == 2  # the no_proxy request never reached the proxy
    finally:
        proxy.stop()
