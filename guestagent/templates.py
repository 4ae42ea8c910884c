"""os-apply-config compatible templates: render a tree against the metadata, and key queries.

The template tree mirrors the output root: `<templates>/etc/foo.conf` becomes
`/etc/foo.conf`. A plain file is a mustache template (no HTML escaping, a
missing key renders empty, objects and lists render as JSON); an executable
file is run with the metadata as JSON on stdin and its stdout becomes the
file. `<file>.oac` (YAML) may set `mode`, `owner`, `group` and `allow_empty`
(false: an empty result removes the file instead of writing it).

Everything is rendered before anything is written: one failing template
leaves every file as it was. Files are written atomically and a file whose
content did not change is not rewritten.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from guestagent import process
from guestagent.deployments import DATA_GROUPS
from guestagent.errors import GuestAgentError
from guestagent.state import write_atomic

DEFAULT_TEMPLATES = Path("/usr/libexec/os-apply-config/templates")
# Where os-collect-config listed the current metadata files for readers outside a refresh run.
INDEX_NAME = "os_config_files.json"
DEFAULT_INDEX = Path("/var/lib/os-collect-config") / INDEX_NAME
# os-collect-config's index before it moved to /var/lib.
OLD_INDEX = Path("/var/run/os-collect-config") / INDEX_NAME
# Files os-apply-config merged before the listed ones (most general first) unless told not to.
FALLBACK_METADATA = (Path("/var/cache/heat-cfntools/last_metadata"),
                     Path("/var/lib/heat-cfntools/cfn-init-data"),
                     Path("/var/lib/cloud/data/cfn-init-data"))
DEFAULT_MODE = 0o644
EXEC_TIMEOUT = 300.0
CONTROL_SUFFIX = ".oac"
CONTROL_KEYS = frozenset({"mode", "owner", "group", "allow_empty"})

# Value checks of the query mode, with the names os-apply-config used.
TYPES = {
    "int": r"^[0-9]+$",
    "default": r"^[A-Za-z0-9_]*$",
    "netaddress": r"^[A-Za-z0-9/.:-]*$",
    "netdevice": r"^[A-Za-z0-9/.:-]*$",
    "dsn": r"^[a-zA-Z0-9+]+://([^:@]+(:[^@]+)?@)?[a-zA-Z0-9/_.:-]*(/[a-zA-Z0-9_-]+)?(\?[a-zA-Z0-9=&]+)?$",
    "swiftdevices": r"^(r\d+z\d+-[A-Za-z0-9._-]+:%PORT%/[^,]+,?)+$",
    "username": r"^[A-Za-z0-9_-]+$",
    "raw": r"",
}


class TemplateError(GuestAgentError):
    """A template, a control file or the metadata could not be used; names the file."""


@dataclass(frozen=True)
class Control:
    """What a `.oac` file says about its template's output."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    allow_empty: bool = True


@dataclass(frozen=True)
class Rendered:
    """One output file, rendered but not yet written."""

    template: Path
    dest: Path
    content: bytes
    control: Control


@dataclass
class ApplyResult:
    """What `apply` changed, by output path."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


# -- metadata ------------------------------------------------------------

def merge(base: dict, update: Mapping) -> dict:
    """Deep-merge `update` into a copy of `base`: objects merge, anything else replaces."""
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def with_deployment_data(metadata: Mapping) -> dict:
    """The metadata with the config of data-only deployments (os-apply-config group) merged in."""
    result = dict(metadata)
    deployments = metadata.get("deployments")
    for dep in deployments if isinstance(deployments, list) else ():
        # A deployment without a group is Heat::Ungrouped, as os-collect-config read it.
        if isinstance(dep, dict) and dep.get("group", "Heat::Ungrouped") in DATA_GROUPS \
                and isinstance(dep.get("config"), dict):
            result = merge(result, dep["config"])
    return result


def load_metadata(config_files: Sequence[Path]) -> dict:
    """Merge JSON files, most general first; missing files are skipped like os-apply-config did."""
    merged: dict = {}
    for path in config_files:
        try:
            with open(path, "rb") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise TemplateError(f"metadata file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise TemplateError(f"metadata file {path}: must hold a JSON object")
        merged = merge(merged, data)
    return with_deployment_data(merged)


def config_files_from_env(environ: Mapping[str, str] | None = None,
                          index: Path = DEFAULT_INDEX) -> list[Path]:
    """OS_CONFIG_FILES (colon-separated), else the list in the os-collect-config index file."""
    environ = os.environ if environ is None else environ
    value = environ.get("OS_CONFIG_FILES", "")
    if value:
        return [Path(p) for p in value.split(":") if p]
    return read_index(index)


def read_index(index: Path) -> list[Path]:
    """The metadata files an os-collect-config index (a JSON list of paths) names; [] if absent."""
    try:
        with open(index, "rb") as fh:
            listed = json.load(fh)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise TemplateError(f"metadata index {index}: {exc}") from exc
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise TemplateError(f"metadata index {index}: must be a JSON list of paths")
    return [Path(p) for p in listed]


# -- rendering -----------------------------------------------------------

def _renderer():
    import pystache  # imported here: only template runs pay for it

    class JsonRenderer(pystache.Renderer):
        """Mustache without HTML escaping; non-string values render as JSON."""

        def str_coerce(self, val: Any) -> str:
            return json.dumps(val)

    # partials={}: a template never pulls other files in from the working directory.
    return JsonRenderer(escape=lambda text: text, missing_tags="ignore", partials={})


def render_mustache(text: str, metadata: Mapping, where: str = "<template>") -> str:
    """Render one mustache template against the metadata."""
    from pystache.common import PystacheError
    from pystache.parser import ParsingError

    try:
        return _renderer().render(text, metadata)
    except (ParsingError, PystacheError) as exc:
        raise TemplateError(f"template {where}: {exc}") from exc


def _run_executable(path: Path, metadata: Mapping) -> bytes:
    with tempfile.TemporaryDirectory(prefix="guestagent-oac-") as tmp:
        result = process.run([path], stdin=json.dumps(metadata).encode(),
                             stdout_path=Path(tmp) / "stdout", stderr_path=Path(tmp) / "stderr",
                             cwd=path.parent, timeout=EXEC_TIMEOUT)
        if result.status_code != 0:
            why = "timed out" if result.timed_out else f"exited {result.status_code}"
            raise TemplateError(f"executable template {path} {why}: "
                                f"{result.stderr(limit=4096).strip()[-2000:]}")
        return result.stdout_path.read_bytes()


def _resolve_id(value: Any, kind: str, where: Path) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value:
        if value.isdigit():
            return int(value)
        try:
            return pwd.getpwnam(value).pw_uid if kind == "owner" else grp.getgrnam(value).gr_gid
        except KeyError:
            raise TemplateError(f"control file {where}: {kind} {value!r} does not exist") from None
    raise TemplateError(f"control file {where}: {kind} must be a name or a number")


def read_control(path: Path) -> Control:
    """Parse a `.oac` control file; unknown keys and bad values are errors naming the file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"control file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"control file {path}: must be a YAML mapping")
    unknown = set(data) - CONTROL_KEYS
    if unknown:
        raise TemplateError(f"control file {path}: unknown keys {sorted(unknown)} "
                            f"(allowed: {sorted(CONTROL_KEYS)})")
    mode = data.get("mode")
    if mode is not None:
        if isinstance(mode, str) and re.fullmatch(r"0?o?[0-7]{1,4}", mode):
            mode = int(mode.replace("o", ""), 8)
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise TemplateError(f"control file {path}: mode must be octal like 0644")
    allow_empty = data.get("allow_empty", True)
    if not isinstance(allow_empty, bool):
        raise TemplateError(f"control file {path}: allow_empty must be true or false")
    return Control(
        mode=mode,
        uid=_resolve_id(data["owner"], "owner", path) if data.get("owner") is not None else None,
        gid=_resolve_id(data["group"], "group", path) if data.get("group") is not None else None,
        allow_empty=allow_empty)


def template_paths(templates_dir: Path) -> list[Path]:
    """Every template file under the tree (control files excluded), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(templates_dir, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(CONTROL_SUFFIX):
                found.append(Path(dirpath) / name)
    return found


def render_tree(templates_dir: Path, metadata: Mapping, output_root: Path = Path("/")
                ) -> list[Rendered]:
    """Render every template; raise one TemplateError listing all that failed."""
    rendered, failures = [], []
    for template in template_paths(templates_dir):
        dest = Path(output_root) / template.relative_to(templates_dir)
        try:
            control_path = template.with_name(template.name + CONTROL_SUFFIX)
            control = read_control(control_path) if control_path.exists() else Control()
            if os.access(template, os.X_OK):
                content = _run_executable(template, metadata)
            else:
                content = render_mustache(template.read_text(), metadata,
                                          str(template)).encode()
        except (TemplateError, OSError, UnicodeDecodeError) as exc:
            failures.append(str(exc) if isinstance(exc, TemplateError)
                            else f"template {template}: {exc}")
            continue
        rendered.append(Rendered(template, dest, content, control))
    if failures:
        raise TemplateError("nothing written; failed: " + "; ".join(failures))
    return rendered


# -- writing -------------------------------------------------------------

def _apply_ownership(dest: Path, control: Control) -> None:
    if control.uid is not None or control.gid is not None:
        os.chown(dest, -1 if control.uid is None else control.uid,
                 -1 if control.gid is None else control.gid)


def _write_one(item: Rendered, result: ApplyResult) -> None:
    dest, control = item.dest, item.control
    try:
        current = dest.stat()
    except FileNotFoundError:
        current = None
    if not item.content and not control.allow_empty:
        if current is not None:
            dest.unlink()
            result.removed.append(dest)
        return
    mode = control.mode if control.mode is not None else (
        stat.S_IMODE(current.st_mode) if current is not None else DEFAULT_MODE)
    if current is not None and stat.S_ISREG(current.st_mode) and dest.read_bytes() == item.content:
        if stat.S_IMODE(current.st_mode) != mode:
            os.chmod(dest, mode)
        _apply_ownership(dest, control)
        result.unchanged.append(dest)
        return
    # Output directories are ordinary system directories (like /etc/x), not private state.
    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(dest, item.content, mode)
    if current is not None and control.uid is None and control.gid is None:
        os.chown(dest, current.st_uid, current.st_gid)  # keep the replaced file's owner
    _apply_ownership(dest, control)
    result.written.append(dest)


def default_templates_dir() -> Path:
    """$OS_CONFIG_APPLIER_TEMPLATES, else /usr/libexec/os-apply-config/templates."""
    return Path(os.environ.get("OS_CONFIG_APPLIER_TEMPLATES") or DEFAULT_TEMPLATES)


def apply(metadata: Mapping, templates_dir: Path | None = None,
          output_root: Path = Path("/")) -> ApplyResult:
    """Render the template tree against `metadata` and write what changed.

    `templates_dir` defaults to $OS_CONFIG_APPLIER_TEMPLATES, else
    /usr/libexec/os-apply-config/templates; a missing tree is nothing to do.
    """
    templates_dir = Path(templates_dir or default_templates_dir())
    result = ApplyResult()
    if not templates_dir.is_dir():
        return result
    for item in render_tree(templates_dir, metadata, output_root):
        try:
            _write_one(item, result)
        except OSError as exc:
            raise TemplateError(f"cannot write {item.dest} (from {item.template}): "
                                f"{exc.strerror}") from exc
    return result


# -- query mode ----------------------------------------------------------

_MISSING = object()


def lookup(metadata: Any, key: str) -> Any:
    """The value at a dotted key (`a.b.0`: list items by index), or _MISSING."""
    value = metadata
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def query(metadata: Mapping, key: str, type_name: str = "default",
          default: str | None = None) -> str:
    """The text `--key` prints: the value checked against `type_name`, or `default`
    (printed as given: the default is not type-checked, as in os-apply-config)."""
    if type_name not in TYPES:
        raise TemplateError(f"unknown type {type_name!r} (known: {', '.join(sorted(TYPES))})")
    value = lookup(metadata, key)
    if value is _MISSING or value is None:
        if default is None:
            raise TemplateError(f"key {key} does not exist in the metadata")
        return str(default)
    if isinstance(value, (dict, list)):
        if type_name != "raw":
            raise TemplateError(f"key {key} is an object or list; use --type raw to print it")
        return json.dumps(value)
    text = value if isinstance(value, str) else str(value)
    if type_name != "raw" and not re.match(TYPES[type_name], text):
        raise TemplateError(f"key {key}: value {text!r} does not look like type {type_name}")
    # JSON spelling for true/false (os-apply-config printed booleans as JSON).
    return json.dumps(value) if isinstance(value, bool) else text


def boolean_key(metadata: Mapping, key: str) -> bool | None:
    """`--boolean-key`: the value at `key` when it is a JSON boolean, else None."""
    value = lookup(metadata, key)
    return value if isinstance(value, bool) else None


def sub_tree(metadata: Mapping, keys: str | None) -> Mapping:
    """`--subhash`: the object at dotted `keys` (the whole metadata when None)."""
    for part in keys.split(".") if keys else ():
        if not isinstance(metadata.get(part), dict):
            raise TemplateError(f"key {keys} does not name an object in the metadata")
        metadata = metadata[part]
    return metadata


# -- command line: guestagent/compat/apply.py ------------------------------

if __name__ == "__main__":
    # `python -m guestagent.templates` (the shipped configure.d script): `apply-config`.
    from guestagent.compat.apply import main as _main
    sys.exit(_main())
