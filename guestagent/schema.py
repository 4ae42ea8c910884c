"""The one schema of the agent's settings: every setting's kind, allowed range and who may set
it, and the check every origin goes through (command line, YAML file, the old INI file, the
metadata's `os-collect-config` key).

An operator origin (command line, YAML, INI) that gives a value out of range, of the wrong
type, or a key the agent does not know is a ConfigError naming the origin, the setting and
what is allowed. The metadata is not the operator's: what it may not set, or sets badly, is
ignored and described in a list of messages instead.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from guestagent.errors import ConfigError

DAY = 86400.0
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Option:
    """One setting (or one option of a source's section).

    kind: seconds | count | bool | text | texts | url | path | paths | names | level.
    `metadata`: Heat may set it through the `os-collect-config` key. `ini`: read from the
    `[DEFAULT]` section of /etc/os-collect-config.conf. `effect=False`: accepted because the
    old agent's files carry it, but it changes nothing here.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    metadata: bool = False
    ini: bool = False
    effect: bool = True

    def allowed(self) -> str:
        """What this option accepts, for error messages and the README."""
        if self.kind == "seconds":
            return f"a number of seconds from {_num(self.low)} to {_num(self.high)}"
        if self.kind == "count":
            return f"a whole number from {_num(self.low)} to {_num(self.high)}"
        return {
            "bool": "true or false",
            "text": "a string",
            "texts": "a string or a list of strings",
            "url": "an http:// or https:// URL with a host",
            "path": "a path",
            "paths": "a path or a list of paths",
            "names": "a list of source names",
            "level": " ".join(LOG_LEVELS),
        }[self.kind]


def _num(value: float | None) -> str:
    return f"{value:g}"


def seconds(low: float, high: float = DAY, **flags: bool) -> Option:
    """A duration in seconds from `low` to `high` (flags as for Option)."""
    return Option("seconds", low, high, **flags)


# Top-level settings. Sources' options live with the sources (collectors.REGISTRY).
SETTINGS: dict[str, Option] = {
    "collectors": Option("names", metadata=True, ini=True),
    "polling_interval": seconds(0.1, metadata=True, ini=True),
    "conditional_polling_interval": seconds(0.1, metadata=True, ini=True),
    "splay": seconds(0.0, metadata=True, ini=True),
    "fast_poll_interval": seconds(0.1),
    "fast_poll_period": seconds(0.0),
    "hook_timeout": seconds(0.1),
    "max_attempts": Option("count", 1, 100),
    "state_dir": Option("path"),
    "deployed_dir": Option("path"),
    "os_config_dir": Option("path"),
    "hooks_dirs": Option("paths"),
    "log_level": Option("level"),
}

# os-collect-config's own [DEFAULT] options and oslo's usual logging ones: an old INI file may
# carry them; they are accepted and have no effect here.
OLD_INI_KEYS = frozenset((
    "command", "cachedir", "backup_cachedir", "one_time", "min_polling_interval",
    "print_cachedir", "force", "print", "deployment_key", "debug", "verbose", "log_file",
    "log_dir", "use_syslog", "use_journal", "use_stderr", "syslog_log_facility",
    "log_config_append", "log_date_format", "config_file", "config_dir"))
# os-collect-config's [keystone] section (its token cache): accepted, no effect here.
OLD_INI_SECTIONS = frozenset(("keystone",))
UNSET = object()  # None or "": "not set" (in a source's section, it clears the option)
NOT_FROM_METADATA = "not settable from metadata"
REFUSED = object()  # a metadata value that was ignored (and recorded as such)


class Refused(Exception):
    """A value this option does not accept; `allowed` says what it would."""

    def __init__(self, problem: str, allowed: str):
        super().__init__(problem)
        self.problem, self.allowed = problem, allowed


def convert(option: Option, value: Any, *, from_text: bool = False) -> Any:
    """`value` in the option's type; UNSET for None or an empty string; Refused otherwise.
    `from_text`: the value came from an INI file, where lists are comma separated."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return UNSET
    allowed = option.allowed()
    if option.kind in ("seconds", "count"):
        return _number(option, value, allowed)
    if option.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise Refused(f"{_show(value)} is not true or false", allowed)
    if option.kind == "level":
        if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
            return value.strip().upper()
        raise Refused(f"{_show(value)} is not a log level", allowed)
    if option.kind in ("texts", "paths", "names"):
        items = value
        if isinstance(value, str):
            items = ([i.strip() for i in re.split("[,\n]", value)]
                     if from_text or option.kind == "names" else [value])
        if not isinstance(items, list):
            raise Refused(f"{_kind(value)} {_show(value)} is not {allowed}", allowed)
        one = Option("path" if option.kind == "paths" else "text")
        converted = [convert(one, item) for item in items]
        return [c for c in converted if c is not UNSET]
    if not isinstance(value, str):
        # YAML reads 0123 or 1e5 as numbers: a string option must be quoted to keep its text.
        raise Refused(f"{_kind(value)} {_show(value)} is not a string (quote it)", allowed)
    if "\x00" in value or (option.kind != "text" and any(ord(c) < 32 for c in value)):
        raise Refused(f"{_show(value)} holds control characters", allowed)
    if option.kind == "url":
        _check_url(value, allowed)
    return value


def _number(option: Option, value: Any, allowed: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Refused(f"{_kind(value)} {_show(value)} is not a number", allowed)
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise Refused(f"{_show(value)} is not a number", allowed) from None
    except OverflowError:  # an int too large for a float
        raise Refused(f"{_show(value)} is out of range", allowed) from None
    if not math.isfinite(number):
        raise Refused(f"{_show(value)} is not a finite number", allowed)
    if not option.low <= number <= option.high:
        raise Refused(f"{_show(value)} is out of range", allowed)
    if option.kind == "count":
        if not number.is_integer():
            raise Refused(f"{_show(value)} is not a whole number", allowed)
        return int(number)
    return number


def _check_url(value: str, allowed: str) -> None:
    # Messages show the URL without user info, query or fragment (temp URL signatures,
    # passwords): an error line must not carry a credential.
    shown = _show(re.sub(r"//[^/@]*@", "//", value).split("?")[0].split("#")[0])
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise Refused(f"{shown} is not a URL ({exc})", allowed) from None
    if parts.scheme not in ("http", "https"):
        raise Refused(f"{shown} has scheme {_show(parts.scheme or 'none')}", allowed)
    if not parts.hostname:
        raise Refused(f"{shown} names no host", allowed)
    if any(c.isspace() for c in value):
        raise Refused(f"{shown} holds white space", allowed)


def _kind(value: Any) -> str:
    return {bool: "boolean", dict: "mapping", list: "list"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    # Short and printable: the value may be long, or hostile when it comes from metadata.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def label(key: Any) -> str:
    """A key as it may appear in a message: itself when short and printable, else its repr
    cut short (a key from metadata could forge log lines or flood them)."""
    if isinstance(key, str) and key.isprintable() and len(key) <= 60:
        return key
    return _show(key)


def suggest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' for a likely typo of one of `known`, else ''."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


@dataclass
class Origin:
    """Where a layer of settings came from; `refuse` raises (operator) or records (metadata)."""

    label: str                       # "config file /etc/...", "command line", "metadata ..."
    operator: bool = True
    flag: Callable[[str], str] | None = None  # setting name -> its command-line flag
    messages: list[str] | None = None

    def where(self, name: str) -> str:
        """The origin as an error message names it (with the flag, for the command line)."""
        return f"{self.label} {self.flag(name)}" if self.flag else self.label

    def refuse(self, name: str, problem: str, allowed: str = "") -> None:
        """Raise ConfigError (operator origins), or record the message (metadata)."""
        text = f"{name}: {problem}" + (f" (allowed: {allowed})" if allowed else "")
        if self.operator:
            raise ConfigError(f"{self.where(name)}: {text}")
        if self.messages is None:
            self.messages = []
        self.messages.append(text)


def check_value(origin: Origin, name: str, option: Option, value: Any,
                from_text: bool = False) -> Any:
    """The converted value, UNSET, or (for metadata) REFUSED after recording why."""
    try:
        return convert(option, value, from_text=from_text)
    except Refused as exc:
        origin.refuse(name, exc.problem, exc.allowed)
        return REFUSED


def check_section(origin: Origin, source: str, options: Mapping[str, Option], value: Any,
                  from_text: bool = False) -> dict[str, Any] | None:
    """One source's options, converted; None (cleared) where a value is None or empty."""
    if not isinstance(value, dict):
        origin.refuse(source, f"must be a mapping of options, not {_kind(value)} {_show(value)}")
        return None
    out: dict[str, Any] = {}
    denied: list[str] = []
    for key, raw in value.items():
        name = f"{source}.{label(key)}"
        option = options.get(key) if isinstance(key, str) else None
        if option is None:
            if origin.operator:
                origin.refuse(name, f"unknown option of source {source}"
                                    + suggest(str(key), sorted(options)))
            else:
                denied.append(name)
            continue
        if not origin.operator and not option.metadata:
            denied.append(name)
            continue
        converted = check_value(origin, name, option, raw, from_text)
        if converted is not REFUSED:  # refused (metadata): the lower layers' value stays
            out[key] = None if converted is UNSET else converted
    if denied:
        origin.refuse(", ".join(denied), NOT_FROM_METADATA)
    return out
