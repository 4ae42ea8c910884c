"""The cfn source against the fake heat-api-cfn, which checks the signature like ec2token."""

import base64
import hashlib
import hmac
import logging

import pytest

from guestagent.collectors import build
from guestagent.collectors.cfn import sign_v2
from guestagent.errors import SourceNotConfigured, SourceUnavailable
from tests.fakecloud import FakeCloud

DOC = {"deployments": [{"id": "d1"}], "os-collect-config": {"cfn": {"x": 1}},
       "nested": {"inner": {"a": "<&>"}}}


def _cfn(cloud, tmp_path, **extra):
    cloud.add_ec2_credentials("AKID", "secret-key-123")
    cloud.set_server_metadata("st", "uuid-1", "server", DOC)
    options = {"metadata_url": f"{cloud.url}/cfn/v1/", "stack_name": "st",
               "access_key_id": "AKID", "secret_access_key": "secret-key-123",
               "path": "server.Metadata"}
    options.update(extra)
    return build("cfn", options)


def test_sign_v2_matches_hand_built_string_to_sign():
    params = {"B": "x y", "A": "a/b", "Signature": "dropped"}
    text = "GET\nhost.example:8000\n/v1/\nA=a%2Fb&B=x%20y"
    want = base64.b64encode(hmac.new(b"k", text.encode(), hashlib.sha256).digest()).decode()
    assert sign_v2("k", "GET", "http://HOST.example:8000/v1/", params) == want


def test_signed_request_and_metadata(fakecloud, tmp_path):
    assert _cfn(fakecloud, tmp_path).collect(None).document == DOC
    req = fakecloud.requests[-1]
    assert req.path == "/cfn/v1/"
    assert req.query["Action"] == "DescribeStackResource"
    assert req.query["LogicalResourceId"] == "server"
    assert req.query["SignatureMethod"] == "HmacSHA256" and req.query["SignatureVersion"] == "2"
    assert req.query["Timestamp"].endswith("Z")


def test_sub_path(fakecloud, tmp_path):
    cfn = _cfn(fakecloud, tmp_path, path="server.Metadata.nested.inner")
    assert cfn.collect(None).document == {"a": "<&>"}
    missing = _cfn(fakecloud, tmp_path, path="server.Metadata.nested.nope")
    with pytest.raises(SourceUnavailable, match=r"no server\.Metadata\.nested\.nope"):
        missing.collect(None)


def test_several_paths_merge_with_one_request_per_resource(fakecloud, tmp_path):
    # The old INI file allows `path` several times (a list here).
    cfn = _cfn(fakecloud, tmp_path, path=["server.Metadata.nested", "server.Metadata.nested.inner"])
    before = len(fakecloud.requests)
    assert cfn.collect(None).document == {"inner": {"a": "<&>"}, "a": "<&>"}
    assert len(fakecloud.requests) == before + 1


def test_ca_certificate_and_verification_by_default(tmp_path):
    cloud = FakeCloud(tls=True).start()
    try:
        with pytest.raises(SourceUnavailable, match="SSLError"):
            _cfn(cloud, tmp_path).collect(None)
        assert _cfn(cloud, tmp_path, ca_certificate=cloud.ca_file).collect(None).document == DOC
    finally:
        cloud.stop()


def test_url_from_hint_file(fakecloud, tmp_path):
    hint = tmp_path / "cfn-metadata-server"
    hint.write_text(f"{fakecloud.url}/cfn\n")
    cfn = _cfn(fakecloud, tmp_path, metadata_url=None, heat_metadata_hint=str(hint))
    assert cfn.metadata_url == f"{fakecloud.url}/cfn/v1/"
    assert cfn.collect(None).document == DOC


def test_no_url_is_not_configured(tmp_path):
    with pytest.raises(SourceNotConfigured, match="no metadata_url"):
        build("cfn", {"stack_name": "s", "access_key_id": "a", "secret_access_key": "b",
                      "path": "server.Metadata",
                      "heat_metadata_hint": str(tmp_path / "absent")})


def test_wrong_secret_is_refused_without_leaking(fakecloud, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    cfn = _cfn(fakecloud, tmp_path, secret_access_key="wrong-secret")
    with pytest.raises(SourceUnavailable) as err:
        cfn.collect(None)
    assert "HTTP 403 (SignatureError)" in str(err.value)
    signature = fakecloud.requests[-1].query["Signature"]
    for secret in ("wrong-secret", signature, "Signature="):
        assert secret not in str(err.value) and secret not in caplog.text


@pytest.mark.parametrize("kind", ["truncated", "html"])
def test_malformed_xml(fakecloud, tmp_path, kind):
    cfn = _cfn(fakecloud, tmp_path)
    fakecloud.garble("/cfn/", kind)
    with pytest.raises(SourceUnavailable, match="not valid XML|unexpected XML root"):
        cfn.collect(None)


def _cfn_serving(fakecloud, tmp_path, body: str):
    """A cfn source whose metadata URL answers `body` as it is (the plain metadata path)."""
    fakecloud.set_metadata(body.encode())
    cfn = _cfn(fakecloud, tmp_path)
    cfn.metadata_url = fakecloud.metadata_url
    return cfn


def test_entity_expansion_refused(fakecloud, tmp_path):
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            "<DescribeStackResourceResponse><DescribeStackResourceResult><StackResourceDetail>"
            "<Metadata>&lol2;</Metadata></StackResourceDetail></DescribeStackResourceResult>"
            "</DescribeStackResourceResponse>")
    with pytest.raises(SourceUnavailable, match="DTD; refused"):
        _cfn_serving(fakecloud, tmp_path, bomb).collect(None)


def test_metadata_not_json(fakecloud, tmp_path):
    xml = ("<DescribeStackResourceResponse><DescribeStackResourceResult><StackResourceDetail>"
           "<Metadata>{not json</Metadata></StackResourceDetail></DescribeStackResourceResult>"
           "</DescribeStackResourceResponse>")
    with pytest.raises(SourceUnavailable, match="Metadata is not valid JSON"):
        _cfn_serving(fakecloud, tmp_path, xml).collect(None)
