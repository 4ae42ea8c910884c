"""Hooks: built-in ones (one module each) and external heat-config hooks found on disk.

Lookup order for a group: the operator's `--hooks-dir` directories, then the
built-in hooks, then the heat-config places ($HEAT_CONFIG_HOOKS,
/usr/libexec/heat-config/hooks, /var/lib/heat-config/hooks).
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Iterable

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


def default_dirs() -> list[Path]:
    dirs = [os.environ["HEAT_CONFIG_HOOKS"]] if os.environ.get("HEAT_CONFIG_HOOKS") else []
    return [Path(d) for d in dirs + list(DEFAULT_DIRS)]


def find(group: str, extra_dirs: Iterable[Path] = ()):
    """The hook for `group`, or HookNotFound listing where it was looked for."""
    from guestagent.hooks.external import ExternalHook

    name = hook_name(group)
    if not name:
        raise HookNotFound(f"group {group!r} has no usable hook name")
    extra_dirs = [Path(d) for d in extra_dirs]
    for directory in extra_dirs:
        if _executable(directory / name):
            return ExternalHook(directory / name)
    if name in BUILTIN:
        return importlib.import_module(BUILTIN[name]).HOOK
    for directory in default_dirs():
        if _executable(directory / name):
            return ExternalHook(directory / name)
    searched = ", ".join(str(d) for d in extra_dirs + default_dirs())
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
