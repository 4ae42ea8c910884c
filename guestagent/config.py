"""The agent's settings, merged from (lowest to highest precedence): built-in defaults, the old
`/etc/os-collect-config.conf`, the YAML config file, the `os-collect-config` key of the
metadata, and the command line. Collector lists are the union of the configured list and the
one the metadata names, so Heat can add a source at run time but never remove the operator's.
"""

from __future__ import annotations

import configparser
import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from guestagent.errors import ConfigError

DEFAULT_CONFIG = "/etc/guestagent/guestagent.yaml"
OLD_CONFIG = "/etc/os-collect-config.conf"
DEFAULT_STATE_DIR = "/var/lib/guestagent"
OS_CONFIG_DIR = "/var/lib/os-collect-config"
DEFAULT_COLLECTORS = ["heat_local", "config_drive", "local"]
SOURCE_SECTIONS = ("heat_local", "local", "request", "heat", "cfn", "ec2", "zaqar", "config_drive")
# Options that hold lists in the old INI file (comma separated there).
_INI_LISTS = {"collectors", "path"}


@dataclass
class Settings:
    """Everything the agent needs to run, validated."""

    collectors: list[str] = field(default_factory=lambda: list(DEFAULT_COLLECTORS))
    polling_interval: float = 30.0
    # Sources whose poll is cheap (conditional GET, local stat) are polled this often.
    conditional_polling_interval: float = 1.0
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

    def source_options(self, name: str) -> dict[str, Any]:
        return dict(self.sources.get(name) or {})


def default_os_config_dir(state_dir: Path) -> Path:
    """The standard install shares os-collect-config's directory, so old scripts that read
    it keep working; any other state directory keeps everything inside itself."""
    if Path(state_dir) == Path(DEFAULT_STATE_DIR):
        return Path(OS_CONFIG_DIR)
    return Path(state_dir) / "os-collect-config"


def load(config_file: str | None = None, cli: Mapping[str, Any] | None = None,
         old_config: str | None = OLD_CONFIG) -> "Loaded":
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
    settings = loaded.settings()  # validate now, so a bad file fails at start with a clear message
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
    """Settings before the metadata's word: call settings(metadata) for the effective ones."""

    base: dict[str, Any]
    cli: dict[str, Any]

    def settings(self, metadata: Mapping[str, Any] | None = None) -> Settings:
        from guestagent.collectors import REGISTRY

        layered = copy.deepcopy(self.base)
        cli = dict(self.cli)
        collectors = list(cli.pop("collectors", None) or layered.get("collectors")
                          or DEFAULT_COLLECTORS)
        occ = (metadata or {}).get("os-collect-config")
        if isinstance(occ, dict):
            _merge(layered, {k: v for k, v in occ.items() if k != "collectors"})
            extra = occ.get("collectors")
            if isinstance(extra, list):
                # A source this agent does not know is ignored, not fatal: metadata is not ours.
                collectors = _union(collectors, [c for c in extra
                                                 if isinstance(c, str) and c in REGISTRY])
        for name in SOURCE_SECTIONS:
            if cli.get(name):
                layered.setdefault(name, {}).update(cli.pop(name))
        _merge(layered, {k: v for k, v in cli.items() if v is not None})
        layered["collectors"] = collectors
        return _validate(layered)


def _union(first: list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys(list(first) + list(second)))


def _merge(into: dict, new: Mapping[str, Any]) -> None:
    # Source sections merge key by key (credentials from metadata, URL from the command line).
    for key, value in new.items():
        if key in SOURCE_SECTIONS and isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = {**into[key], **value}
        else:
            into[key] = value


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if not text.strip():
        return {}  # empty (or /dev/null): no need to load the YAML parser
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a YAML mapping")
    return data


def _read_ini(path: Path) -> dict:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    result: dict[str, Any] = {}
    for key, value in parser.defaults().items():
        if key in ("collectors", "polling_interval", "conditional_polling_interval"):
            result[key] = _ini_value(key, value)
    for section in parser.sections():
        name = section.replace("-", "_")
        if name in SOURCE_SECTIONS:
            result[name] = {k: _ini_value(k, v) for k, v in parser.items(section, raw=True)
                            if k not in parser.defaults()}
    return result


def _ini_value(key: str, value: str):
    if key in _INI_LISTS:
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _validate(data: dict) -> Settings:
    settings = Settings()
    out: dict[str, Any] = {}
    for key in ("polling_interval", "conditional_polling_interval", "hook_timeout",
                "fast_poll_interval", "fast_poll_period"):
        if key in data:
            try:
                out[key] = float(data[key])
            except (TypeError, ValueError):
                raise ConfigError(f"{key}: must be a number of seconds, not {data[key]!r}") from None
            if out[key] <= 0 and key != "fast_poll_period":
                raise ConfigError(f"{key}: must be greater than 0, not {data[key]!r}")
    if "max_attempts" in data:
        if not isinstance(data["max_attempts"], int) or data["max_attempts"] < 1:
            raise ConfigError(f"max_attempts: must be a whole number >= 1, not {data['max_attempts']!r}")
        out["max_attempts"] = data["max_attempts"]
    collectors = data.get("collectors")
    if not isinstance(collectors, list) or not all(isinstance(c, str) for c in collectors):
        raise ConfigError(f"collectors: must be a list of names, not {collectors!r}")
    from guestagent.collectors import REGISTRY
    unknown = [c for c in collectors if c not in REGISTRY]
    if unknown:
        raise ConfigError(f"collectors: unknown {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(REGISTRY))})")
    out["collectors"] = collectors
    for key in ("state_dir", "deployed_dir", "os_config_dir"):
        if data.get(key):
            if not isinstance(data[key], (str, Path)):
                raise ConfigError(f"{key}: must be a path, not {data[key]!r}")
            out[key] = Path(data[key])
    hooks_dirs = data.get("hooks_dirs") or []
    if isinstance(hooks_dirs, str):
        hooks_dirs = [hooks_dirs]
    if not isinstance(hooks_dirs, list) or not all(isinstance(d, (str, Path)) for d in hooks_dirs):
        raise ConfigError(f"hooks_dirs: must be a list of paths, not {hooks_dirs!r}")
    out["hooks_dirs"] = [Path(d) for d in hooks_dirs]
    if data.get("log_level"):
        out["log_level"] = str(data["log_level"]).upper()
    sources = {}
    for name in SOURCE_SECTIONS:
        if name in data:
            if not isinstance(data[name], dict):
                raise ConfigError(f"{name}: must be a mapping of options")
            sources[name] = data[name]
    out["sources"] = sources
    out.setdefault("os_config_dir", default_os_config_dir(out.get("state_dir", settings.state_dir)))
    return replace(settings, **out)
