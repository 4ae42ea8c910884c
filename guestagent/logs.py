"""Logging set-up: one line per event, secrets scrubbed from every record as a last line of defence."""

from __future__ import annotations

import logging
import re
import sys
import threading

# Query keys and JSON/header fields whose values are secrets wherever they appear.
_SECRET_PATTERN = re.compile(
    r"(?i)(signature|temp_url_sig|x-auth-token|x-subject-token|password|secret_access_key"
    r"|token)([\"']?\s*[=:]\s*[\"']?)([^&\s\"',}]+)")
# user:password@ in a URL, wherever a URL appears in a message.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: what forges lines.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: object) -> None:
    """Remember a secret value (a password from metadata) so it is scrubbed from any log line."""
    if isinstance(value, str) and len(value) >= 6:
        with _known_lock:
            _known.add(value)


def escape(text: str) -> str:
    """`text` with control characters (newline, escape, ...) written as \\n, \\x1b...: an id,
    a name or a peer's message can then never forge a log line or drive a terminal."""
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match) -> str:
    char = match.group(0)
    return {"\n": "\\n", "\r": "\\r"}.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def hide_userinfo(text: str) -> str:
    """`text` with the user:password@ of every URL in it replaced."""
    return _USERINFO.sub(r"\1<redacted>@", text)


def scrub(text: str) -> str:
    """`text` with known secrets, secret-looking fields and URL userinfo replaced."""
    text = _SECRET_PATTERN.sub(lambda m: m.group(1) + m.group(2) + "<redacted>", text)
    text = hide_userinfo(text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    return text


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = escape(scrub(message))
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup(level: str = "INFO") -> None:
    """Log to stderr (journald adds time and unit); library chatter stays at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("urllib3", "keystoneauth", "stevedore", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
