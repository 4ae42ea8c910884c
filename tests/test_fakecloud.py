"""The fake cloud's own logic: AWS signature v2 checking, temp URL signatures, Zaqar claims."""

import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import requests

from tests.fakecloud import ec2_signature


def test_ec2_signature_matches_hand_built_string_to_sign():
    # The string to sign written out literally, so the signer is checked against the spec.
    params = {"Action": "DescribeStackResource", "StackName": "my stack",
              "AWSAccessKeyId": "AK", "SignatureVersion": "2", "SignatureMethod": "HmacSHA256",
              "Timestamp": "2024-01-02T03:04:05Z", "Signature": "ignored"}
    text = ("GET\n127.0.0.1:8000\n/cfn/v1/\nAWSAccessKeyId=AK&Action=DescribeStackResource"
            "&SignatureMethod=HmacSHA256&SignatureVersion=2&StackName=my%20stack"
            "&Timestamp=2024-01-02T03%3A04%3A05Z")
    want = base64.b64encode(hmac.new(b"SK", text.encode(), hashlib.sha256).digest()).decode()
    assert ec2_signature("SK", "GET", "127.0.0.1:8000", "/cfn/v1/", params) == want


def _describe(cloud, secret="SK", host=None, stamp=None, tamper=None):
    host = host or cloud.url.split("//", 1)[1]
    params = {"Action": "DescribeStackResource", "StackName": "st", "LogicalResourceId": "server",
              "AWSAccessKeyId": "AK", "SignatureVersion": "2", "SignatureMethod": "HmacSHA256",
              "Timestamp": stamp or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    params["Signature"] = ec2_signature(secret, "GET", host, "/cfn/v1/", params)
    if tamper:
        params.update(tamper)
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return requests.get(f"{cloud.url}/cfn/v1/?{query}", timeout=5)


def test_describe_stack_resource_verifies_signature(fakecloud):
    fakecloud.add_ec2_credentials("AK", "SK")
    fakecloud.set_server_metadata("st", "uuid-1", "server", {"deployments": [{"id": "d1"}]})
    ok = _describe(fakecloud)
    assert ok.status_code == 200, ok.text
    assert '{&quot;deployments&quot;: [{&quot;id&quot;: &quot;d1&quot;}]}' in ok.text or \
        '"deployments"' in ok.text
    assert _describe(fakecloud, secret="wrong").status_code == 403
    assert _describe(fakecloud, tamper={"StackName": "other"}).status_code == 403
    assert _describe(fakecloud, host="localhost:1").status_code == 403
    old = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _describe(fakecloud, stamp=old).status_code == 403


def test_cfn_signal_url_is_verified_and_recorded(fakecloud):
    url = fakecloud.cfn_signal_url("deployment1")
    assert requests.post(url, json={"deploy_status_code": 0}, timeout=5).status_code == 200
    assert fakecloud.signals == [("CFN_SIGNAL", "deployment1", {"deploy_status_code": 0})]
    # Only POST is routed, and a changed path no longer matches the signature.
    assert requests.put(url, json={}, timeout=5).status_code == 404
    assert requests.post(url.replace("deployment1", "deployment2"), json={},
                         timeout=5).status_code == 403
    assert len(fakecloud.signals) == 1


def test_on_signal_sees_each_recorded_signal_before_the_reply(fakecloud):
    """Heat's next step (a chain's next deployment) can hang off a signal: the hook runs once
    per signal, after it is recorded, and what it sets is there when the signaller's reply is."""
    seen = []

    def next_deployment(transport, target, body):
        seen.append((transport, target, body, len(fakecloud.signals)))
        fakecloud.set_server_metadata("st", "uuid-1", "server", {"after": target})

    fakecloud.on_signal = next_deployment
    assert requests.post(fakecloud.cfn_signal_url("dep1"), json={"deploy_status_code": 0},
                         timeout=5).status_code == 200
    assert seen == [("CFN_SIGNAL", "dep1", {"deploy_status_code": 0}, 1)]
    assert fakecloud._server_metadata[("st", "uuid-1", "server")] == {"after": "dep1"}
    assert requests.put(fakecloud.temp_url("dep2"), data=b"{}", timeout=5).status_code == 201
    assert [s[:2] for s in seen] == [("CFN_SIGNAL", "dep1"), ("TEMP_URL_SIGNAL", "dep2")]
    # A refused signal is no signal: the hook is not called.
    assert requests.post(fakecloud.cfn_signal_url("dep3").replace("dep3", "dep4"), json={},
                         timeout=5).status_code == 403
    assert len(seen) == 2


def test_temp_url_signature_method_and_expiry(fakecloud):
    put = fakecloud.temp_url("sig1", method="PUT")
    assert requests.put(put, data=b'{"a": 1}', timeout=5).status_code == 201
    assert fakecloud.get_object("sig1") == b'{"a": 1}'
    assert requests.get(put, timeout=5).status_code == 401  # signed for PUT only
    expired = fakecloud.temp_url("sig1", method="GET", lifetime=-10)
    assert requests.get(expired, timeout=5).status_code == 401
    get = fakecloud.temp_url("sig1", method="GET")
    first = requests.get(get, timeout=5)
    assert first.status_code == 200 and first.json() == {"a": 1}
    again = requests.get(get, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
    assert again.status_code == 304


def test_zaqar_claim_hides_message_until_deleted_with_claim(fakecloud):
    fakecloud.add_user("u", "p")
    tok = requests.post(f"{fakecloud.auth_url}/auth/tokens", timeout=5, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"id": "u", "password": "p"}}},
        "scope": {"project": {"id": fakecloud.project_id}}}}).headers["X-Subject-Token"]
    h = {"X-Auth-Token": tok, "Client-ID": "c1", "X-Project-Id": fakecloud.project_id}
    base = f"{fakecloud.url}/zaqar/v2/queues/q"
    fakecloud.post_message("q", {"n": 1})
    claim = requests.post(f"{base}/claims", json={"ttl": 60, "grace": 10}, headers=h, timeout=5)
    assert claim.status_code == 201
    msg = claim.json()["messages"][0]
    assert requests.get(f"{base}/messages?echo=true", headers=h, timeout=5).json()["messages"] == []
    mid = msg["id"]
    assert requests.delete(f"{base}/messages/{mid}", headers=h, timeout=5).status_code == 403
    assert requests.delete(fakecloud.url + "/zaqar" + msg["href"], headers=h,
                           timeout=5).status_code == 204
    assert fakecloud.queue("q") == []
    no_client = {k: v for k, v in h.items() if k != "Client-ID"}
    assert requests.get(f"{base}/messages", headers=no_client, timeout=5).status_code == 400
