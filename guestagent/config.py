"""The agent's settings, merged from (lowest to highest precedence): built-in defaults, the old
`/etc/os-collect-config.conf`, the YAML config file, the `os-collect-config` key of the
metadata, and the command line. Collector lists are the union of the configured list and the
one the metadata names, so Heat can add a source at run time but never remove the operator's.

Every origin goes through one schema (guestagent.schema; sources' options come from
collectors.REGISTRY). The operator's origins fail with a ConfigError naming origin, setting
and what is allowed; the metadata may set only what Heat writes there (the allow-list: each
option marked `metadata`), and the rest of it is ignored with one warning.
"""

from __future__ import annotations

import configparser
import copy
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from guestagent import schema
from guestagent.collectors import REGISTRY
from guestagent.errors import ConfigError
from guestagent.schema import REFUSED, SETTINGS, UNSET, Origin

log = logging.getLogger("guestagent")

DEFAULT_CONFIG = "/etc/guestagent/guestagent.yaml"
OLD_CONFIG = "/etc/os-collect-config.conf"
DEFAULT_STATE_DIR = "/var/lib/guestagent"
OS_CONFIG_DIR = "/var/lib/os-collect-config"
DEFAULT_COLLECTORS = ["heat_local", "config_drive", "local"]
# Derived from the registry: a new source's section is known as soon as it is registered.
SOURCE_SECTIONS = tuple(REGISTRY)
METADATA_KEY = "os-collect-config"


@dataclass
class Settings:
    """Everything the agent needs to run, validated."""

    collectors: list[str] = field(default_factory=lambda: list(DEFAULT_COLLECTORS))
    polling_interval: float = 30.0
    # Sources whose poll is cheap (conditional GET, local stat) are polled this often.
    conditional_polling_interval: float = 1.0
    # Range of each instance's phase offset for costly sources' polls; None: polling_interval.
    splay: float | None = None
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    hooks_dirs: list[Path] = field(default_factory=list)
    deployed_dir: Path = Path("/var/lib/heat-config/deployed")
    hook_timeout: float = 3600.0
    max_attempts: int = 3
    fast_poll_interval: float = 1.0
    fast_poll_period: float = 120.0
    log_level: str = "INFO"
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where the files OS_CONFIG_FILES names are written (see default_os_config_dir).
    os_config_dir: Path = Path(OS_CONFIG_DIR)
    # What the metadata's os-collect-config key tried to set and was ignored (one line each).
    ignored: tuple[str, ...] = field(default=(), compare=False)

    def source_options(self, name: str) -> dict[str, Any]:
        return dict(self.sources.get(name) or {})

    @property
    def effective_splay(self) -> float:
        """Seconds over which instances spread their costly polls (0: not spread)."""
        return self.polling_interval if self.splay is None else self.splay


def default_os_config_dir(state_dir: Path) -> Path:
    """The standard install shares os-collect-config's directory, so old scripts that read
    it keep working; any other state directory keeps everything inside itself."""
    if Path(state_dir) == Path(DEFAULT_STATE_DIR):
        return Path(OS_CONFIG_DIR)
    return Path(state_dir) / "os-collect-config"


def cli_flag(name: str) -> str:
    """The command-line flag of a setting (`request.metadata_url` -> --request-metadata-url)."""
    if name == "hooks_dirs":
        return "--hooks-dir"
    return "--" + name.replace(".", "-").replace("_", "-")


def load(config_file: str | None = None, cli: Mapping[str, Any] | None = None,
         old_config: str | None = OLD_CONFIG) -> Loaded:
    """Read the old INI and the YAML file, keep the command line; validate what is there."""
    base: dict[str, Any] = {}
    if old_config and Path(old_config).is_file():
        _check_owner(Path(old_config), "config file")
        _merge(base, _read_ini(Path(old_config)))
    path = Path(config_file or DEFAULT_CONFIG)
    if path.exists():  # /dev/null says "no file" explicitly
        if path.is_file():
            _check_owner(path, "config file")
        _merge(base, _read_yaml(path))
    elif config_file:
        raise ConfigError(f"config file {config_file} does not exist")
    loaded = Loaded(base=base, cli=dict(cli or {}))
    _check_cli_paths(loaded.checked_cli)
    settings = loaded.settings()  # validate now, so a bad file fails at start
    _check_state_dir(settings.state_dir, "state_dir" in loaded.checked_cli)
    for directory in settings.hooks_dirs:
        if directory.is_dir():  # a hook found there runs as root
            _check_owner(directory, "hooks directory")
    return loaded


def _check_owner(path: Path, what: str) -> None:
    """UntrustedPath (a ConfigError: exit 2) when another user owns `path` or may write it; a
    symbolic link is judged by what it points to."""
    from guestagent import fstrust

    try:
        fstrust.check_trusted(path, path.stat(), what=what)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from exc


@dataclass
class Loaded:
    """Settings before the metadata's word: call settings(metadata) for the effective ones.

    `base` holds the checked layers of the files; `cli` the command line as given (checked
    here, and kept as given so a reload can check it again).
    """

    base: dict[str, Any]
    cli: dict[str, Any]
    checked_cli: dict[str, Any] = field(init=False, repr=False)
    _reported: list[str] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        self.checked_cli = check_layer(self.cli, Origin("command line", flag=cli_flag))

    def settings(self, metadata: Mapping[str, Any] | None = None) -> Settings:
        """The effective settings. Never raises for the metadata: what its os-collect-config
        key may not set, or sets badly, is left out, listed in `Settings.ignored` and logged
        once per distinct content."""
        layered = copy.deepcopy(self.base)
        cli = copy.deepcopy(self.checked_cli)
        collectors = list(cli.pop("collectors", None) or layered.get("collectors")
                          or DEFAULT_COLLECTORS)
        ignored: list[str] = []
        if isinstance(metadata, Mapping) and metadata.get(METADATA_KEY) is not None:
            occ, ignored = from_metadata(metadata[METADATA_KEY])
            collectors = _union(collectors, occ.pop("collectors", []))
            _merge(layered, occ)
        _merge(layered, cli)
        layered["collectors"] = collectors
        self._report(ignored)
        return _settings_from(layered, ignored)

    def _report(self, ignored: list[str]) -> None:
        if not ignored:
            return
        text = "; ".join(ignored)
        if text in self._reported:
            return
        self._reported[:] = self._reported[-31:] + [text]  # bounded: metadata may vary a lot
        log.warning("metadata key %s, ignored: %s (see README, Settings)", METADATA_KEY, text)


def from_metadata(occ: Any) -> tuple[dict[str, Any], list[str]]:
    """The part of the metadata's os-collect-config key the agent takes (Heat's transport
    sections, collectors, polling_interval, ...), and one message per thing it ignores."""
    if not isinstance(occ, dict):
        return {}, [f"{schema.label(occ)} is not a mapping"]
    origin = Origin(f"metadata key {METADATA_KEY}", operator=False)
    layer = check_layer(occ, origin)
    return layer, list(origin.messages or [])


def check_layer(data: Mapping[str, Any], origin: Origin, from_text: bool = False) -> dict:
    """One origin's settings, each converted and checked (see schema.Origin for failures)."""
    out: dict[str, Any] = {}
    denied: list[str] = []
    for key, raw in data.items():
        if key in REGISTRY:
            section = schema.check_section(origin, key, REGISTRY[key].options, raw, from_text)
            if section is not None:
                out[key] = section
            continue
        option = SETTINGS.get(key) if isinstance(key, str) else None
        if not origin.operator and (option is None or not option.metadata):
            denied.append(schema.label(key))
            continue
        if option is None:
            origin.refuse(schema.label(key), "unknown setting" + schema.suggest(
                str(key), sorted(list(SETTINGS) + list(REGISTRY))))
            continue
        value = schema.check_value(origin, key, option, raw, from_text)
        if key == "collectors" and isinstance(value, list):
            value = _known_sources(origin, value)
        if value is not UNSET and value is not REFUSED:
            out[key] = value
    if denied:
        origin.refuse(", ".join(denied), schema.NOT_FROM_METADATA)
    return out


def _known_sources(origin: Origin, names: list[str]) -> list[str]:
    # From metadata an unknown source is left out (Heat may know a newer one than we do).
    known = []
    for name in names:
        if name in REGISTRY:
            known.append(name)
        else:
            origin.refuse("collectors", f"unknown source {schema.label(name)}"
                          + schema.suggest(name, sorted(REGISTRY)), ", ".join(REGISTRY))
    return known


def _settings_from(layered: dict[str, Any], ignored: list[str]) -> Settings:
    out: dict[str, Any] = {k: v for k, v in layered.items() if k in SETTINGS}
    for key in ("state_dir", "deployed_dir", "os_config_dir"):
        if key in out:
            out[key] = Path(out[key])
    out["hooks_dirs"] = [Path(d) for d in out.get("hooks_dirs", [])]
    # An option set to None (Heat clears the previous transport's keys so) is not set.
    out["sources"] = {name: {k: v for k, v in layered[name].items() if v is not None}
                      for name in REGISTRY if name in layered}
    out.setdefault("os_config_dir", default_os_config_dir(out.get("state_dir",
                                                                  Settings.state_dir)))
    return replace(Settings(), **out, ignored=tuple(ignored))


def _union(first: list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys(list(first) + list(second)))


def _merge(into: dict, new: Mapping[str, Any]) -> None:
    # Source sections merge key by key (credentials from metadata, URL from the command line).
    for key, value in new.items():
        if key in REGISTRY and isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = {**into[key], **value}
        else:
            into[key] = copy.deepcopy(value)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if not text.strip():
        return {}  # empty (or /dev/null): no need to load the YAML parser
    import yaml

    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a YAML mapping")
    return check_layer(data, Origin(f"config file {path}"))


class _Repeated(dict):
    """INI storage that keeps every value of a repeated key (os-collect-config's MultiStrOpt:
    heat-agents' template writes one `collectors = x` line per source); configparser joins
    them with new lines, which the schema splits like commas."""

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, list) and isinstance(self.get(key), list):
            value = self[key] + value
        super().__setitem__(key, value)


def _read_ini(path: Path) -> dict:
    parser = configparser.ConfigParser(interpolation=None, strict=False, dict_type=_Repeated)
    try:
        parser.read(path)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    origin = Origin(f"config file {path}")
    raw: dict[str, Any] = {}
    for key, value in parser.defaults().items():
        key = key.replace("-", "_")
        option = SETTINGS.get(key)
        if key in schema.OLD_INI_KEYS:
            continue  # os-collect-config's own options: nothing to do here
        if option is not None and not option.ini:
            origin.refuse(f"DEFAULT.{key}", f"not read from this file; set {key} in the YAML "
                                            f"file ({DEFAULT_CONFIG})")
        raw[key] = value
    for section in parser.sections():
        name = section.replace("-", "_")
        if name in schema.OLD_INI_SECTIONS:
            continue
        if name not in REGISTRY:
            origin.refuse(f"[{section}]", "unknown section" + schema.suggest(name, sorted(REGISTRY)))
        raw[name] = {k.replace("-", "_"): v for k, v in parser.items(section, raw=True)
                     if k not in parser.defaults()}
    return check_layer(raw, origin, from_text=True)


def _check_cli_paths(cli: Mapping[str, Any]) -> None:
    # A path named on the command line is a statement that it exists: a typo must not turn
    # into a source that quietly reads nothing.
    wanted = [("local.path", p, True) for p in cli.get("local", {}).get("path") or []]
    wanted += [("heat_local.path", p, False) for p in cli.get("heat_local", {}).get("path") or []]
    wanted += [("hooks_dirs", p, True) for p in cli.get("hooks_dirs") or []]
    for name, path, directory in wanted:
        where = f"command line {cli_flag(name)}: {name}"
        if not os.path.exists(path):
            raise ConfigError(f"{where}: {path} does not exist")
        if directory and not os.path.isdir(path):
            raise ConfigError(f"{where}: {path} is not a directory")


def _check_state_dir(path: Path, from_cli: bool) -> None:
    # Checked before anything creates or chmods it: a file named by mistake stays untouched.
    where = "command line --state-dir: state_dir" if from_cli else "state_dir"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.lexists(path):
            raise ConfigError(f"{where}: {path} is a dangling symbolic link") from None
        return
    except OSError as exc:
        raise ConfigError(f"{where}: {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(f"{where}: {path} exists and is not a directory (allowed: a "
                          "directory the agent may create or already owns)")
