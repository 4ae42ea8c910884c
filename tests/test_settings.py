"""One schema for every setting from every origin: each setting (and each option of each
registered source) is tried from the YAML file, the old INI file, the command line and the
metadata's os-collect-config key, with a good value and with bad ones (inf, nan, 1e300,
negative, a boolean where a number belongs, a wrong type, a typo). The operator's origins
fail naming origin, setting and allowed range; the metadata's bad or forbidden values are
ignored and listed, never fatal."""

from __future__ import annotations

import importlib
import itertools
import logging
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guestagent import cli, config
from guestagent.collectors import REGISTRY
from guestagent.errors import ConfigError, SourceNotConfigured
from guestagent.schema import SETTINGS, Option

# Per kind: good values as (raw, effective) and bad raw values (for YAML and metadata).
GOOD = {
    "seconds": [(2.5, 2.5), ("7", 7.0)],
    "count": [(70, 70), ("80", 80)],
    "bool": [(True, True), ("no", False)],
    "text": [("abc", "abc")],
    "url": [("https://h.example:8443/v1/", "https://h.example:8443/v1/")],
    "path": [("/srv/x", "/srv/x")],
    "paths": [(["/srv/a", "/srv/b"], ["/srv/a", "/srv/b"])],
    "texts": [("R.Metadata", ["R.Metadata"]), (["A.Metadata", "B.Metadata"],
                                               ["A.Metadata", "B.Metadata"])],
    "names": [(["local", "request"], ["local", "request"])],
    "level": [("debug", "DEBUG")],
}
BAD = {
    "seconds": [math.inf, -math.inf, math.nan, 1e300, -1, True, "soon", [1], 10**400],
    "count": [2.5, True, "many", math.inf, -1],
    "bool": ["maybe", 3, [True]],
    "text": [123, 1.5, ["a"], {"a": 1}],
    "url": ["ftp://h.example/x", "file:///etc/passwd", "http://", "h.example/x",
            "http://h.example:port/", 5],
    "path": [5, ["a"], "a\x00b"],
    "paths": [5, [1], {"a": 1}],
    "texts": [5, [1]],
    "names": [["nope"], 5],
    "level": ["loud", 5],
}
# The same, as text (INI values and command-line arguments are text).
BAD_TEXT = {"seconds": ["inf", "nan", "1e300", "-1", "soon", "86401"],
            "count": ["2.5", "many", "1e300"], "bool": ["maybe"],
            "url": ["ftp://h.example/x", "http://", "h.example/x"], "names": ["nope"],
            "level": ["loud"]}
# Values a source needs for its build to get past the required ones.
SPECIAL = {"heat.stack_id": "st/uuid-1", "cfn.path": "server.Metadata"}


def every_option():
    """(name, section or None, key, Option) for every setting and every source's option."""
    rows = [(key, None, key, opt) for key, opt in SETTINGS.items()]
    for source, spec in REGISTRY.items():
        rows += [(f"{source}.{key}", source, key, opt) for key, opt in spec.options.items()]
    return rows


OPTIONS = every_option()
IDS = [row[0] for row in OPTIONS]


def bad_values(opt: Option, text: bool = False) -> list:
    """BAD (or BAD_TEXT) for the option's kind, plus just outside its own range."""
    values = list((BAD_TEXT if text else BAD).get(opt.kind, []))
    if opt.kind in ("seconds", "count"):
        step = 0.01 if opt.kind == "seconds" else 1
        outside = [opt.low - step, opt.high + step]
        values += [repr(v) for v in outside] if text else outside
    return values


def good_values(name: str, opt: Option):
    values = list(GOOD[opt.kind])
    if opt.kind in ("seconds", "count"):
        # one inside the option's own range (splay, claim_ttl and max_attempts differ)
        mid = (opt.low + opt.high) / 2 if opt.high < 1000 else opt.low + 60
        values = [(v, float(e) if opt.kind == "seconds" else int(e)) for v, e in values
                  if opt.low <= float(v) <= opt.high] + [(mid, mid if opt.kind == "seconds"
                                                          else int(mid))]
        if opt.kind == "count":
            values = [(int(v) if not isinstance(v, str) else v, int(e)) for v, e in values]
    return values


def effective(s: config.Settings, section: str | None, key: str):
    value = s.source_options(section).get(key) if section else getattr(s, key)
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value) if value.__class__.__name__.endswith("Path") else value


def yaml_file(tmp_path, data) -> str:
    path = tmp_path / "guestagent.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return str(path)


def layer(section, key, value) -> dict:
    return {section: {key: value}} if section else {key: value}


# ---- YAML -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, section, key, opt", OPTIONS, ids=IDS)
def test_yaml_good_values_reach_the_settings(tmp_path, name, section, key, opt):
    for raw, want in good_values(name, opt):
        s = config.load(yaml_file(tmp_path, layer(section, key, raw)), old_config=None).settings()
        assert effective(s, section, key) == want


@pytest.mark.parametrize("name, section, key, opt", OPTIONS, ids=IDS)
def test_yaml_bad_values_name_origin_setting_and_range(tmp_path, name, section, key, opt):
    for raw in bad_values(opt):
        path = yaml_file(tmp_path, layer(section, key, raw))
        with pytest.raises(ConfigError) as info:
            config.load(path, old_config=None)
        message = str(info.value)
        assert message.startswith(f"config file {path}: {name}: "), message
        assert "allowed: " in message and "\n" not in message


@pytest.mark.parametrize("text, message", [
    ("polling_intervall: 3\n", "polling_intervall: unknown setting (did you mean polling_interval?)"),
    ("hook_timout: 3\n", "hook_timout: unknown setting (did you mean hook_timeout?)"),
    ("heat: {auth_ur: 'http://k/'}\n", ("heat.auth_ur: unknown option of source heat "
                                        "(did you mean auth_url?)")),
    ("request: 3\n", "request: must be a mapping of options, not int 3"),
    ("collectors: [heat_locl]\n", "collectors: unknown source heat_locl (did you mean heat_local?)"),
])
def test_yaml_unknown_keys_and_wrong_types_suggest(tmp_path, text, message):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="^config file .*: " + message.replace("(", r"\(")
                       .replace(")", r"\)").replace("?", r"\?")):
        config.load(str(path), old_config=None)


# ---- the old INI file ---------------------------------------------------------------------
def ini_file(tmp_path, section, key, text) -> str:
    path = tmp_path / "os-collect-config.conf"
    path.write_text(f"[{section or 'DEFAULT'}]\n{key} = {text}\n")
    return str(path)


def as_text(value) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


@pytest.mark.parametrize("name, section, key, opt", OPTIONS, ids=IDS)
def test_ini_values(tmp_path, name, section, key, opt):
    if section is None and not opt.ini:
        # The agent's own settings live in its YAML file; the old file says where.
        path = ini_file(tmp_path, None, key, "1")
        with pytest.raises(ConfigError, match=f"DEFAULT.{key}: not read from this file; set "
                                              f"{key} in the YAML file"):
            config.load("/dev/null", old_config=path)
        return
    for raw, want in good_values(name, opt):
        path = ini_file(tmp_path, section, key.replace("_", "-"), as_text(raw))
        s = config.load("/dev/null", old_config=path).settings()
        assert effective(s, section, key) == (want if opt.kind != "texts" or isinstance(raw, list)
                                              else [raw])
    for text in bad_values(opt, text=True):
        path = ini_file(tmp_path, section, key, text)
        with pytest.raises(ConfigError, match=f"^config file {path}: {name}: .*allowed: "):
            config.load("/dev/null", old_config=path)


def test_ini_from_heat_agents_template_loads(tmp_path):
    # What heat-agents' os-apply-config template renders after Heat cleared the request
    # transport's keys (empty values) and set heat's (no region), one line per collector,
    # plus os-collect-config's own keys and [keystone] section: it must load.
    path = tmp_path / "occ.conf"
    path.write_text("[DEFAULT]\ncommand = os-refresh-config\npolling_interval = 30\n"
                    "collectors = ec2\ncollectors = heat\ncollectors = local\nsplay = 10\n\n"
                    "[heat]\nauth_url = http://k:5000/v3\n"
                    "user_id = u\npassword = p\nproject_id = pr\nstack_id = st/1\n"
                    "resource_name = server\nregion_name = \n\n[request]\nmetadata_url = \n"
                    "[keystone]\ncache_dir = /var/cache/occ\ncache_ttl = 7200\n")
    s = config.load("/dev/null", old_config=str(path)).settings()
    assert s.collectors == ["ec2", "heat", "local"] and s.splay == 10.0
    assert s.source_options("heat")["auth_url"] == "http://k:5000/v3"
    assert "region_name" not in s.source_options("heat") and s.source_options("request") == {}


def test_ini_unknown_key_and_section_suggest(tmp_path):
    path = tmp_path / "occ.conf"
    path.write_text("[DEFAULT]\npolling_intervall = 3\n")
    with pytest.raises(ConfigError, match=r"polling_intervall: unknown setting \(did you mean "
                                          r"polling_interval\?\)"):
        config.load("/dev/null", old_config=str(path))
    path.write_text("[heta]\nauth_url = http://k/\n")
    with pytest.raises(ConfigError, match=r"\[heta\]: unknown section \(did you mean heat\?\)"):
        config.load("/dev/null", old_config=str(path))


# ---- the command line (parsed by the real parser) -----------------------------------------
FLAGS = {name: config.cli_flag(name) for name in (
    "polling_interval", "conditional_polling_interval", "splay", "hook_timeout", "state_dir",
    "deployed_dir", "hooks_dirs", "log_level", "collectors", "request.metadata_url",
    "local.path", "heat_local.path")}
BY_NAME = {row[0]: row for row in OPTIONS}


def from_argv(*argv: str) -> config.Loaded:
    return config.load("/dev/null", cli._cli_settings(cli.run_parser().parse_args(list(argv))),
                       old_config=None)


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_command_line_values(tmp_path, name):
    _, section, key, opt = BY_NAME[name]
    flag = FLAGS[name]
    assert flag in cli.run_parser().format_help()
    for raw, want in good_values(name, opt):
        if opt.kind in ("paths", "path"):  # paths given on the command line must exist
            raw = [str(tmp_path / "d")] if opt.kind == "paths" else str(tmp_path / "d")
            (tmp_path / "d").mkdir(exist_ok=True)
            want = raw
        argv = [a for v in (raw if isinstance(raw, list) and opt.kind == "paths" else [raw])
                for a in (flag, as_text(v))]
        s = from_argv(*argv).settings()
        assert effective(s, section, key) == want
    for text in bad_values(opt, text=True):
        with pytest.raises(ConfigError) as info:
            from_argv(flag, text)
        assert str(info.value).startswith(f"command line {flag}: {name}: ")
        assert "allowed: " in str(info.value)


# ---- metadata: only what Heat writes, the rest ignored and listed --------------------------
@pytest.mark.parametrize("name, section, key, opt", OPTIONS, ids=IDS)
def test_metadata_sets_only_the_allow_list(caplog, name, section, key, opt):
    loaded = config.load("/dev/null", old_config=None)
    before = effective(loaded.settings(), section, key) if section is None else None
    for raw, want in good_values(name, opt):
        s = loaded.settings({"os-collect-config": layer(section, key, raw)})
        if opt.metadata:
            got = effective(s, section, key)
            assert got == want or (key == "collectors" and got[-len(want):] == want)
            assert s.ignored == ()
        else:
            assert effective(s, section, key) == before
            assert s.ignored == (f"{name}: not settable from metadata",)
    if not opt.metadata:
        return
    for raw in bad_values(opt):
        s = loaded.settings({"os-collect-config": layer(section, key, raw)})
        assert effective(s, section, key) == before  # the lower layers' value stays
        assert len(s.ignored) == 1 and s.ignored[0].startswith(f"{name}: ")


def test_metadata_operator_only_keys_are_ignored_with_one_warning(caplog):
    loaded = config.load("/dev/null", {"state_dir": "/srv/state"}, old_config=None)
    occ = {"os_config_dir": "/etc", "hooks_dirs": ["/tmp"], "deployed_dir": "/tmp",
           "max_attempts": 100, "hook_timeout": 5, "state_dir": "/", "command": "rm -rf /",
           "cachedir": "/etc", "local": {"path": ["/etc"]}, "heat_local": {"path": "/etc/x"},
           "ec2": {"metadata_url": "http://evil.example/"}, "polling_interval": 45,
           "request": {"metadata_url": "https://swift.example/o?temp_url_sig=x", "timeout": 1}}
    with caplog.at_level(logging.WARNING, logger="guestagent"):
        for _ in range(3):
            s = loaded.settings({"os-collect-config": occ})
    assert s.polling_interval == 45
    assert s.source_options("request") == {"metadata_url": "https://swift.example/o?temp_url_sig=x"}
    assert (s.os_config_dir, s.state_dir, s.hook_timeout, s.max_attempts, s.hooks_dirs) == (
        config.default_os_config_dir(s.state_dir), config.Path("/srv/state"), 3600.0, 3, [])
    assert s.source_options("local") == {} and s.source_options("ec2") == {}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    for key in ("os_config_dir", "hooks_dirs", "deployed_dir", "max_attempts", "hook_timeout",
                "state_dir", "command", "cachedir", "local.path", "heat_local.path",
                "ec2.metadata_url", "request.timeout"):
        assert key in warnings[0]


def test_metadata_clears_a_transport_key_with_none():
    # Heat sets the previous transport's keys to None when it switches transports.
    loaded = config.load("/dev/null", {"request": {"metadata_url": "http://cli/x"}},
                         old_config=None)
    s = loaded.settings({"os-collect-config": {"heat": {"auth_url": None, "user_id": "u"},
                                               "request": {"metadata_url": None}}})
    assert s.source_options("heat") == {"user_id": "u"}
    assert s.source_options("request") == {"metadata_url": "http://cli/x"}  # CLI still wins
    assert s.ignored == ()


def test_a_refused_url_is_shown_without_its_credentials(tmp_path):
    path = yaml_file(tmp_path, {"request": {
        "metadata_url": "ftp://user:pa55word@h.example/o?temp_url_sig=5ecret#x"}})
    with pytest.raises(ConfigError) as info:
        config.load(path, old_config=None)
    assert "'ftp://h.example/o' has scheme 'ftp'" in str(info.value)
    assert "pa55word" not in str(info.value) and "5ecret" not in str(info.value)


def test_metadata_key_names_are_escaped_in_messages():
    s = config.load("/dev/null", old_config=None).settings(
        {"os-collect-config": {"x\n2026 ERROR forged": 1, "y" * 500: 2}})
    assert all("\n" not in m and len(m) < 200 for m in s.ignored)


SCALAR = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
          | st.sampled_from(["inf", "nan", "1e300", "-1", "http://h/", "ftp://h/", "local"]))
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=8)
OCC_KEYS = st.sampled_from(sorted(list(SETTINGS) + list(REGISTRY) + ["command", "junk"]))
SOURCE_OPTS = st.sampled_from(sorted({k for s in REGISTRY.values() for k in s.options}))
# A value of a setting or of a section: scalars as often as containers.
VALUE = st.one_of(SCALAR, st.lists(SCALAR, max_size=3), JSON,
                  st.dictionaries(SOURCE_OPTS, st.one_of(SCALAR, st.lists(SCALAR, max_size=2),
                                                         JSON), max_size=4))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(OCC_KEYS, VALUE, max_size=6) | JSON)
def test_any_metadata_gives_settings_inside_the_schema(occ):
    loaded = config.load("/dev/null", {"state_dir": "/srv/s"}, old_config=None)
    s = loaded.settings({"os-collect-config": occ})
    for key, opt in SETTINGS.items():
        value = getattr(s, key)
        if opt.kind in ("seconds", "count") and value is not None:
            assert math.isfinite(value) and opt.low <= value <= opt.high
            assert not isinstance(value, bool)
    base = loaded.settings()
    for key, opt in SETTINGS.items():
        if not opt.metadata:
            assert getattr(s, key) == getattr(base, key), key
    for source, options in s.sources.items():
        for key in options:
            assert REGISTRY[source].options[key].metadata, (source, key)
    assert set(base.collectors) <= set(s.collectors) <= set(REGISTRY)


# ---- the registry: every source's options are declared and honoured -------------------------
class Recorder(dict):
    """Options that remember which keys the source's build looked at."""

    def __init__(self, data):
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_every_registered_source_reads_exactly_its_declared_options(tmp_path, source):
    spec = REGISTRY[source]
    section = {key: SPECIAL.get(f"{source}.{key}", good_values(key, opt)[0][0])
               for key, opt in spec.options.items()}
    options = config.load(yaml_file(tmp_path, {source: section}), old_config=None) \
        .settings().source_options(source)
    assert set(options) == set(spec.options)  # each reached the source through the settings
    module = importlib.import_module(spec.module)
    read: set[str] = set()
    # Every option present, then each one or two left out (`a or b or c` reads c only
    # without a and b).
    keys = sorted(spec.options)
    for leave_out in [()] + [(a,) for a in keys] + list(itertools.combinations(keys, 2)):
        recorder = Recorder({k: v for k, v in options.items() if k not in leave_out})
        try:
            module.build(recorder)
        except SourceNotConfigured:
            pass
        read |= recorder.read
    assert read <= set(spec.options), f"{source} reads undeclared {read - set(spec.options)}"
    with_effect = {k for k, opt in spec.options.items() if opt.effect}
    assert with_effect <= read, f"{source} ignores declared {with_effect - read}"


def test_source_sections_come_from_the_registry():
    assert config.SOURCE_SECTIONS == tuple(REGISTRY)


def assert_inside_schema(s: config.Settings) -> None:
    for key, opt in SETTINGS.items():
        value = getattr(s, key)
        if opt.kind in ("seconds", "count") and value is not None:
            assert not isinstance(value, bool) and math.isfinite(value)
            assert opt.low <= value <= opt.high, (key, value)
    assert set(s.collectors) <= set(REGISTRY)
    for source, options in s.sources.items():
        assert set(options) <= set(REGISTRY[source].options)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.dictionaries(OCC_KEYS, VALUE, max_size=5))
def test_any_yaml_is_settings_inside_the_schema_or_a_config_error(tmp_path, data):
    try:
        s = config.load(yaml_file(tmp_path, data), old_config=None).settings()
    except ConfigError as exc:
        assert str(exc).startswith("config file ") and "\n" not in str(exc)
        return
    assert_inside_schema(s)


TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from([None, *sorted(REGISTRY)]),
                       st.dictionaries(st.sampled_from(sorted(
                           {k for s in REGISTRY.values() for k in s.options} | set(SETTINGS)
                           | {"command", "junk"})), TEXT, max_size=4), max_size=3))
def test_any_ini_is_settings_inside_the_schema_or_a_config_error(tmp_path, sections):
    path = tmp_path / "occ.conf"
    path.write_text("".join(f"[{name or 'DEFAULT'}]\n" + "".join(
        f"{k} = {v}\n" for k, v in opts.items()) for name, opts in sections.items()))
    try:
        s = config.load("/dev/null", old_config=str(path)).settings()
    except ConfigError as exc:
        assert str(exc).startswith("config file ") and "\n" not in str(exc)
        return
    assert_inside_schema(s)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(set(FLAGS.values()) - {
    "--local-path", "--hooks-dir", "--heat-local-path"})), TEXT), max_size=3))
def test_any_command_line_is_settings_inside_the_schema_or_a_config_error(pairs):
    try:
        s = from_argv(*[f"{flag}={value}" for flag, value in pairs]).settings()
    except ConfigError as exc:
        assert str(exc).startswith("command line --") and "\n" not in str(exc)
        return
    assert_inside_schema(s)
