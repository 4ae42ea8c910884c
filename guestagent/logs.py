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
_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: object) -> None:
    """Remember a secret value (a password from metadata) so it is scrubbed from any log line."""
    if isinstance(value, str) and len(value) >= 6:
        with _known_lock:
            _known.add(value)


def scrub(text: str) -> str:
    """`text` with known secrets and secret-looking fields replaced."""
    text = _SECRET_PATTERN.sub(lambda m: m.group(1) + m.group(2) + "<redacted>", text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    return text


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
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
