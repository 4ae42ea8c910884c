"""Leaks and forgeries: URL userinfo never reaches a message or a log line (it is still used
as HTTP basic authentication), control characters from ids, names and peers are escaped in
log lines, and a signal URL that is not http(s) is refused for good with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guestagent import http, logs, signals
from guestagent.collectors import build
from guestagent.errors import SignalFailed, SourceUnavailable

REPO = Path(__file__).resolve().parents[1]


def test_redact_url_hides_userinfo_and_query():
    assert http.redact_url("https://admin:s3cr3t@h:8/p?temp_url_sig=x") == \
        "https://<redacted>@h:8/p?<redacted>"
    assert http.redact_url("http://h/p") == "http://h/p"
    assert logs.scrub("GET http://u:pw@h/x failed; see ftp://a@b/") == \
        "GET http://<redacted>@h/x failed; see ftp://<redacted>@b/"


def test_userinfo_is_sent_as_basic_auth_and_never_shown(fakecloud):
    fakecloud.set_metadata({"a": 1})
    url = fakecloud.metadata_url.replace("http://", "http://meta:pa55word@")
    assert build("request", {"metadata_url": url}).collect(None).document == {"a": 1}
    assert fakecloud.requests[-1].headers["Authorization"] == "Basic bWV0YTpwYTU1d29yZA=="
    fakecloud.fail("/metadata", 500)
    with pytest.raises(SourceUnavailable) as err:
        build("request", {"metadata_url": url}).collect(None)
    assert "HTTP 500" in str(err.value) and "pa55word" not in str(err.value)
    assert "http://<redacted>@127.0.0.1" in str(err.value)


def test_a_signal_error_never_shows_userinfo():
    target = signals.target_for({"deploy_signal_transport": "TEMP_URL_SIGNAL",
                                 "deploy_signal_id": "http://swift:hunter22@127.0.0.1:9/o?s=1"})
    with pytest.raises(SignalFailed) as err:
        signals.send(target, b"{}", deadline=5)
    assert "hunter22" not in str(err.value) and "swift" not in str(err.value)
    assert "127.0.0.1:9/o" in str(err.value)


@pytest.mark.parametrize("url,why", [
    ("file:///etc/passwd", "not an http(s) URL: file:///etc/passwd"),
    ("ftp://user:pw@host/x", "not an http(s) URL: ftp://<redacted>@host/x"),
    ("http://", "not an http(s) URL"),
    ("http://host:99999/x", "not an http(s) URL"),
    ("http://[::1/x", "not an http(s) URL"),
    ("https://host/x\n\x1b[2J", "not an http(s) URL"),
    (["http://host/"], "not an http(s) URL: list"),
])
def test_a_signal_url_that_is_not_http_is_final(url, why):
    with pytest.raises(SignalFailed, match="input deploy_signal_id") as err:
        signals.target_for({"deploy_signal_transport": "CFN_SIGNAL", "deploy_signal_id": url})
    assert not err.value.transient
    assert why in str(err.value)
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)


def test_a_keystone_signal_with_a_bad_auth_url_is_final():
    with pytest.raises(SignalFailed, match="deploy_auth_url is not an http") as err:
        signals.target_for({"deploy_signal_transport": "HEAT_SIGNAL",
                            "deploy_auth_url": "gopher://k/v3", "deploy_user_id": "u",
                            "deploy_password": "p", "deploy_project_id": "pr",
                            "deploy_stack_id": "s/1", "deploy_resource_name": "r"})
    assert not err.value.transient


def test_escape_writes_control_characters_visibly():
    assert logs.escape("id\nINFO forged\r\x1b[31m\x07\x9b\u2028ok\tx") == \
        "id\\nINFO forged\\r\\x1b[31m\\x07\\x9b\\u2028ok\tx"
    assert logs.escape("plain ünïcode") == "plain ünïcode"


def test_log_lines_cannot_be_forged_and_hide_userinfo():
    code = ("import logging\nfrom guestagent import logs\nlogs.setup('INFO')\n"
            "logging.getLogger('x').warning('deployment %s: GET %s failed',"
            " 'd1\\n2026 ERROR forged\\x1b[2J', 'http://u:topsecret@h/p')\n")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "d1\\n2026 ERROR forged\\x1b[2J" in lines[0] and "\x1b" not in lines[0]
    assert "topsecret" not in lines[0] and "http://<redacted>@h/p" in lines[0]
