"""One trust for every transport: a cloud whose certificate a private CA signed (made here)
is accepted by the request, cfn, heat and zaqar sources and by CFN, TEMP_URL, HEAT and ZAQAR
signals when that CA is in the system store, and refused by all of them when it is not. The
system store is stood in for by SSL_CERT_FILE / SSL_CERT_DIR, which OpenSSL reads for its
default paths; the real /etc/ssl is never touched. A source's `ca_certificate` and
`insecure` apply to the signals of the deployments it delivered."""

from __future__ import annotations

import pytest

from guestagent import signals
from guestagent.collectors import build
from guestagent.errors import SignalFailed, SourceUnavailable
from tests.fakecloud import FakeCloud
from tests.support.pki import make_ca

DOC = {"deployments": [{"id": "d1", "group": "script", "config": "true"}]}
BODY = b'{"deploy_status_code": 0}'


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("pki-other"), name="Unrelated CA")


@pytest.fixture
def cloud(private_ca):
    # A cloud per test: a new port, so no kept-alive connection or cached client carries a
    # handshake made under another test's trust.
    c = FakeCloud(tls=True, pki=private_ca).start()
    c.add_user("agent", "agent-pw")
    c.add_ec2_credentials("AKID", "cfn-secret")
    c.set_server_metadata("st", "uuid-1", "server", DOC)
    c.set_metadata(DOC)
    try:
        yield c
    finally:
        c.stop()


def _store(monkeypatch, tmp_path, ca) -> None:
    """Make `ca` (a PrivateCA) the only certificate in the system store stand-in."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "certs"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(empty))


def _keystone(cloud) -> dict:
    return {"auth_url": cloud.auth_url, "user_id": "agent", "password": "agent-pw",
            "project_id": cloud.project_id}


def _source(kind: str, cloud, **tls) -> None:
    if kind == "request":
        options = {"metadata_url": cloud.metadata_url}
    elif kind == "cfn":
        options = {"metadata_url": f"{cloud.url}/cfn/v1/", "stack_name": "st",
                   "access_key_id": "AKID", "secret_access_key": "cfn-secret",
                   "path": "server.Metadata"}
    elif kind == "heat":
        options = {**_keystone(cloud), "stack_id": "st/uuid-1", "resource_name": "server"}
    else:
        cloud.post_message("meta-q", DOC)
        options = {**_keystone(cloud), "queue_id": "meta-q"}
    assert build(kind, {**options, **tls}).collect(None).document == DOC


def _signal(transport: str, cloud, **tls) -> None:
    inputs = {"deploy_signal_transport": transport}
    if transport == "CFN_SIGNAL":
        inputs["deploy_signal_id"] = cloud.cfn_signal_url("res")
    elif transport == "TEMP_URL_SIGNAL":
        inputs["deploy_signal_id"] = cloud.temp_url("res")
    else:
        inputs.update({f"deploy_{k}": v for k, v in _keystone(cloud).items()})
        inputs.update(deploy_stack_id="st/uuid-1", deploy_resource_name="res",
                      deploy_queue_id="signal-q")
    signals.send(signals.target_for(inputs, tls), BODY)
    assert [s[0] for s in cloud.signals] == [transport]


SOURCES = ["request", "cfn", "heat", "zaqar"]
SIGNALS = ["CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL", "ZAQAR_SIGNAL"]


@pytest.mark.parametrize("kind", SOURCES)
def test_source_trusts_a_private_ca_in_the_system_store(kind, cloud, private_ca, monkeypatch,
                                                         tmp_path):
    _store(monkeypatch, tmp_path, private_ca)
    _source(kind, cloud)


@pytest.mark.parametrize("kind", SOURCES)
def test_source_refuses_a_ca_the_store_lacks(kind, cloud, other_ca, monkeypatch, tmp_path):
    _store(monkeypatch, tmp_path, other_ca)
    with pytest.raises(SourceUnavailable, match="SSLError.*certificate verify failed"):
        _source(kind, cloud)


@pytest.mark.parametrize("transport", SIGNALS)
def test_signal_trusts_a_private_ca_in_the_system_store(transport, cloud, private_ca,
                                                        monkeypatch, tmp_path):
    _store(monkeypatch, tmp_path, private_ca)
    _signal(transport, cloud)


@pytest.mark.parametrize("transport", SIGNALS)
def test_signal_refuses_a_ca_the_store_lacks(transport, cloud, other_ca, monkeypatch,
                                             tmp_path):
    _store(monkeypatch, tmp_path, other_ca)
    with pytest.raises(SignalFailed, match="SSLError.*certificate verify failed") as err:
        _signal(transport, cloud)
    assert err.value.transient  # a CA can be installed later: retried, not given up
    assert cloud.signals == []


@pytest.mark.parametrize("transport", SIGNALS)
def test_signal_uses_the_delivering_sources_ca_certificate(transport, cloud, private_ca,
                                                           other_ca, monkeypatch, tmp_path):
    _store(monkeypatch, tmp_path, other_ca)
    _signal(transport, cloud, ca_certificate=str(private_ca.ca))


@pytest.mark.parametrize("transport", ["TEMP_URL_SIGNAL", "HEAT_SIGNAL"])
def test_signal_honours_the_delivering_sources_insecure(transport, cloud, other_ca,
                                                        monkeypatch, tmp_path):
    _store(monkeypatch, tmp_path, other_ca)
    _signal(transport, cloud, insecure="true")


def test_requests_ca_bundle_replaces_the_store_for_keystone_too(cloud, private_ca, other_ca,
                                                                 monkeypatch, tmp_path):
    _store(monkeypatch, tmp_path, other_ca)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(private_ca.ca))
    _source("heat", cloud)


@pytest.mark.parametrize("kind", SOURCES)
def test_source_honours_insecure(kind, cloud, other_ca, monkeypatch, tmp_path):
    _store(monkeypatch, tmp_path, other_ca)
    _source(kind, cloud, insecure="true")


def test_agent_signals_with_the_tls_settings_of_the_source_that_delivered(cloud, private_ca,
                                                                          tmp_path):
    """End to end: metadata over TLS from a private CA given only as the request source's
    ca_certificate; the deployment's TEMP_URL_SIGNAL to the same cloud must use it too."""
    import json as _json

    from tests.support.agent import deployment, run_agent, signals_for

    dep = deployment(cloud, "tls-dep", "#!/bin/sh\necho ok\n", transport="TEMP_URL_SIGNAL")
    cloud.set_metadata({"deployments": [dep]})
    conf = tmp_path / "agent.yaml"
    conf.write_text(_json.dumps({"collectors": ["request"], "request": {
        "metadata_url": cloud.metadata_url, "ca_certificate": str(private_ca.ca)}}))
    proc = run_agent(tmp_path / "state", "--config", str(conf))
    assert proc.returncode == 0, proc.stderr
    assert [s["deploy_stdout"] for s in signals_for(cloud, "tls-dep")] == ["ok\n"]
    entry = _json.loads((tmp_path / "state" / "deployments" / dep["id"] / "journal.json")
                        .read_text())
    assert entry["source"] == "request" and entry["state"] == "signalled"
