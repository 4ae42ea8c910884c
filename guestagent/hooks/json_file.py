"""The `json-file` hook: write each entry of `config` (`{"/abs/path": data}`) as a JSON file.

Paths are confined: absolute, no `..` component, inside the allowed
directories (`HEAT_JSON_FILE_ALLOWED_DIRS`, colon-separated; default `/`) and
never under /proc, /sys or /dev, also after following symlinks of the
directories on the way. Every path is checked before anything is written.
Files are 0600 unless the deployment's `mode` option says otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from guestagent.deployments import Deployment
from guestagent.errors import InvalidDeployment
from guestagent.hooks.base import Hook, HookContext, HookResult, write_destination

ALLOWED_VAR = "HEAT_JSON_FILE_ALLOWED_DIRS"
DENIED = (Path("/proc"), Path("/sys"), Path("/dev"))


class JsonFileHook(Hook):
    """Write the config's files; nothing is written unless every path is acceptable."""

    tool = "json-file"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        if not isinstance(dep.config, dict):
            raise InvalidDeployment(dep.label, "config",
                                    'the json-file group needs an object {"/path": data}')
        mode = file_mode(dep)
        allowed = allowed_dirs(ctx)
        targets = [(confined_path(dep, name, allowed), data) for name, data in dep.config.items()]
        for path, data in targets:
            text = json.dumps(data, indent=4, sort_keys=True, separators=(",", ": "))
            write_destination(path, text, mode)
        # deploy_stdout stays empty, as heat-agents' json-file hook leaves it.
        return HookResult(0)


def allowed_dirs(ctx: HookContext) -> list[Path]:
    value = ctx.environ().get(ALLOWED_VAR, "")
    return [Path(os.path.realpath(d)) for d in value.split(":") if d] or [Path("/")]


def confined_path(dep: Deployment, name: Any, allowed: list[Path]) -> Path:
    """`name` as a path the deployment may write, or InvalidDeployment naming it."""
    field = f"config[{name!r}]"

    def refuse(why: str) -> InvalidDeployment:
        return InvalidDeployment(dep.label, field, why)

    if not isinstance(name, str) or not name.startswith("/") or "\0" in name:
        raise refuse("must be an absolute path")
    if ".." in name.split("/"):
        raise refuse("may not contain '..'")
    path = Path(os.path.normpath(name))
    if path == Path("/") or path.name in ("", "."):
        raise refuse("must name a file")
    # The real location of the deepest existing directory, so a symlink cannot lead outside.
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    real = Path(os.path.realpath(existing)) / path.relative_to(existing)
    for candidate in (path, real):
        if not any(_under(candidate, root) for root in allowed):
            raise refuse(f"{candidate} is outside the allowed directories "
                         f"({':'.join(map(str, allowed))}; set by {ALLOWED_VAR})")
        if any(_under(candidate, root) for root in DENIED):
            raise refuse(f"{candidate} is under a directory no deployment may write")
    if real.is_dir():
        raise refuse("is a directory")
    return path


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def file_mode(dep: Deployment) -> int:
    """The `mode` option (an octal string such as "0644", or a number), default 0600."""
    value = dep.options.get("mode")
    if value is None:
        return 0o600
    try:
        mode = int(value, 8) if isinstance(value, str) else value
    except ValueError:
        mode = None
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
        raise InvalidDeployment(dep.label, "options.mode",
                                f"must be an octal file mode such as \"0644\", not {value!r}")
    return mode


HOOK = JsonFileHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "json-file")


if __name__ == "__main__":
    raise SystemExit(main())
