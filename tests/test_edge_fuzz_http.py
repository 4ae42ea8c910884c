"""Whatever bytes a peer answers with, guestagent.http returns a Reply or raises a
TransportError, within its deadline: random and mutated HTTP replies from a loopback peer."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guestagent import http
from guestagent.errors import TransportError
from tests.badpeer import BadPeer

VALID = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
         b"ETag: \"e\"\r\n\r\n{\"a\": true}")
PIECES = [b"\r\n", b"\r\n\r\n", b":", b" ", b"HTTP/1.1 ", b"HTTP/1.0 200 OK\r\n", b"999",
          b"Content-Length: -1\r\n", b"Content-Length: 99999999999999999999\r\n",
          b"Transfer-Encoding: chunked\r\n", b"ffffffff\r\n", b"0\r\n\r\n", b"\x00", b"\xff",
          b"Location: http://[::1\r\n", b"HTTP/1.1 302 Found\r\nLocation: ftp://x/\r\n",
          b"X: " + b"a" * 70000 + b"\r\n", b"\x1b[2J", "é".encode(),
          b"Content-Type: text/plain; charset=no-such-codec\r\n", b"[" * 5000]


@st.composite
def replies(draw):
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["insert", "delete", "replace", "random"]))
        if how == "insert":
            data[at:at] = draw(st.sampled_from(PIECES))
        elif how == "delete":
            del data[at:at + draw(st.integers(1, 20))]
        elif how == "replace":
            data[at:at + 1] = draw(st.binary(min_size=1, max_size=3))
        else:
            data = bytearray(draw(st.binary(max_size=200)))
    return bytes(data)


@pytest.fixture(scope="module")
def peer():
    with BadPeer("raw") as p:
        yield p


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(reply=replies(), method=st.sampled_from(["GET", "POST"]))
def test_any_reply_is_a_reply_or_a_transport_error(peer, reply, method):
    peer.body = reply
    start = time.monotonic()
    try:
        got = http.request(method, peer.url + "/x", data=b"{}" if method == "POST" else None,
                           timeout=(2.0, 0.5), max_body=4096)
    except TransportError:
        pass
    else:
        assert isinstance(got.status_code, int) and len(got.content) <= 4097
        got.text  # noqa: B018 -- decoding the body must not raise either
        try:
            got.json()
        except ValueError:
            pass  # not JSON: what every caller expects to handle
    assert time.monotonic() - start < 2.5 + 1.0


def test_an_unknown_charset_and_a_deep_document_are_handled(peer):
    page = b"[" * 100000
    peer.body = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=no-such-codec\r\n"
                 b"Content-Length: " + str(len(page)).encode() + b"\r\n\r\n" + page)
    got = http.request("GET", peer.url + "/x")
    assert got.text.startswith("[[[")
    with pytest.raises(ValueError, match="nested 100000 levels deep; at most 64 allowed"):
        got.json()
