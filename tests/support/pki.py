"""A private certificate authority made on the spot with the openssl CLI: a CA certificate and
a server certificate for 127.0.0.1 that it signed, as a cloud with its own CA has."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PrivateCA:
    ca: Path  # the CA certificate (what a trust store must hold)
    cert: Path  # the server certificate (CN and subjectAltName 127.0.0.1), signed by the CA
    key: Path  # the server key

    def server_context(self):
        """A server-side TLS context presenting the signed certificate."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str = "Test Private CA") -> PrivateCA:
    """A new CA in `directory` and a server certificate for 127.0.0.1 signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(ca_key), "-out", str(ca))
    _openssl("req", "-new", *ec, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                          "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(cert))
    return PrivateCA(ca, cert, key)
