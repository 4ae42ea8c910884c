"""Hooks: built-in ones (one module each) and external heat-config hooks found on disk.

Lookup order for a group: the operator's `--hooks-dir` directories, then
$HEAT_CONFIG_HOOKS when it is set (an explicit choice, as in heat-agents, where
it named the only hooks directory), then the built-in hooks, then the default
heat-config directories (/usr/libexec/heat-config/hooks,
/var/lib/heat-config/hooks), which never shadow a built-in: an image that
carries heat-agents' own hooks there still runs guestagent's.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from guestagent.errors import HookNotFound

# group -> module exposing HOOK; imported only when a deployment of that group runs.
BUILTIN = {
    "script": "guestagent.hooks.script",
    "puppet": "guestagent.hooks.puppet",
    "ansible": "guestagent.hooks.ansible",
    "docker-compose": "guestagent.hooks.docker_compose",
    "docker-cmd": "guestagent.hooks.docker_cmd",
    "json-file": "guestagent.hooks.json_file",
    "apply-config": "guestagent.hooks.apply_config",
    "component": "guestagent.hooks.component",
}

DEFAULT_DIRS = ("/usr/libexec/heat-config/hooks", "/var/lib/heat-config/hooks")


def hook_name(group: str) -> str:
    """The group reduced to the characters a hook file name may have."""
    return re.sub(r"[^A-Za-z0-9_-]", "", group)


def operator_dirs() -> list[Path]:
    """$HEAT_CONFIG_HOOKS when set: searched before the built-in hooks."""
    value = os.environ.get("HEAT_CONFIG_HOOKS", "").strip()
    return [Path(value)] if value else []


def default_dirs() -> list[Path]:
    """The heat-config hook directories searched after the built-in hooks."""
    return [Path(d) for d in DEFAULT_DIRS]


def find(group: str, extra_dirs: Iterable[Path] = ()):
    """The hook for `group`, or HookNotFound listing where it was looked for."""
    from guestagent.hooks.external import ExternalHook

    name = hook_name(group)
    if not name:
        raise HookNotFound(f"group {group!r} has no usable hook name")
    first = [Path(d) for d in extra_dirs] + operator_dirs()
    for directory in first:
        if _executable(directory / name):
            return ExternalHook(directory / name)
    if name in BUILTIN:
        return importlib.import_module(BUILTIN[name]).HOOK
    for directory in default_dirs():
        if _executable(directory / name):
            return ExternalHook(directory / name)
    searched = ", ".join(str(d) for d in first + default_dirs())
    raise HookNotFound(f"no hook for group {group!r}: not built in, and no executable "
                       f"{name!r} in {searched}")


def tool_dirs(tool: str, default_root: Path | None = None) -> tuple[Path, Path]:
    """Working and outputs directories of a hook: `HEAT_<TOOL>_WORKING` / `_OUTPUTS` when set,
    else under `default_root` (the agent's state), else where heat-config kept them."""
    from guestagent.state import ensure_dir, safe_component

    var = "HEAT_" + hook_name(tool).upper().replace("-", "_")
    if default_root is not None:
        base = Path(default_root) / safe_component(tool)
        work, outputs = base / "work", base / "outputs"
    else:
        work = Path(f"/var/lib/heat-config/heat-config-{hook_name(tool)}")
        outputs = Path(f"/var/run/heat-config/heat-config-{hook_name(tool)}")
    work = Path(os.environ.get(f"{var}_WORKING") or work)
    outputs = Path(os.environ.get(f"{var}_OUTPUTS") or outputs)
    return ensure_dir(work), ensure_dir(outputs)


def _executable(path: Path) -> bool:
    """Whether `path` is a hook to run; UntrustedPath when it, or its directory, is another
    user's or writable by others (it would run as root)."""
    from guestagent import fstrust

    try:
        if not (path.is_file() and os.access(path, os.X_OK)):
            return False
        fstrust.check_trusted(path.parent, path.parent.stat(), what="hooks directory")
        fstrust.check_trusted(path, path.stat(), what="hook")
    except FileNotFoundError:
        return False  # removed meanwhile
    except OSError as exc:  # a name too long, a directory we may not search
        raise HookNotFound(f"cannot use hook {path}: {exc.strerror}") from exc
    return True
