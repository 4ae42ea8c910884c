"""The `docker-compose` hook: one compose project per deployment name.

As heat-agents did (its hook plus the os-refresh-config script that wrote the
compose file): the project directory is `<working>/<name>`, the compose file
`docker-compose.yml` in it (YAML text as is, an object dumped as YAML), each
`env_files` input entry that a service's `env_file` names is written at its
`file_name` relative to that directory, and `<compose> up -d --no-build` runs
there (so the project is named after the directory). Additions: DELETE, or the
deployment leaving the metadata (`cleanup`), runs `down` in the directory;
`options.remove_orphans: true` adds `--remove-orphans` to `up` and `down`.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from guestagent.deployments import Deployment
from guestagent.errors import HookFailed, InvalidDeployment
from guestagent.hooks.base import (
    Hook,
    HookContext,
    HookResult,
    option_flag,
    result_from_process,
    tool_command,
    write_private,
)
from guestagent.state import safe_component

COMPOSE_FILE = "docker-compose.yml"
# Which deployment id last applied a project: only that one may bring it down on cleanup,
# since an UPDATE arrives as a new id with the same name while the old id disappears.
OWNER_FILE = ".deployment-id"
INSTALL_HINT = ("`apt-get install docker-compose`, the Docker Compose plugin, "
                "or `apt-get install podman-compose`")


class DockerComposeHook(Hook):
    """Apply a compose project named after the deployment; `cleanup` removes it."""

    tool = "docker-compose"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        project_dir = ctx.work_dir / safe_component(dep.name)
        if dep.action == "DELETE":
            if not (project_dir / COMPOSE_FILE).exists():
                return HookResult(0)
            return self._down(dep, ctx, project_dir)
        config = compose_config(dep)
        if config is None:
            return HookResult(0)  # no config: nothing to do, as upstream
        text, parsed = config
        write_private(project_dir / COMPOSE_FILE, text)
        for name, content in env_file_list(dep, parsed, project_dir):
            write_private(project_dir / name, content)
        up = ["up", "-d", "--no-build"]
        if option_flag(dep, "remove_orphans", False):
            up.append("--remove-orphans")
        proc = ctx.run(dep, compose_command(dep, ctx) + up, cwd=project_dir)
        write_private(project_dir / OWNER_FILE, dep.id)
        return result_from_process(proc, {}, ctx.timeout_for(dep))

    def cleanup(self, dep: Deployment, ctx: HookContext) -> HookResult | None:
        """Bring the project down if this (vanished) deployment was the last to apply it."""
        project_dir = ctx.work_dir / safe_component(dep.name)
        try:
            owner = (project_dir / OWNER_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        if owner != dep.id or not (project_dir / COMPOSE_FILE).exists():
            return None  # a newer deployment of the same name owns the project now
        return self._down(dep, ctx, project_dir)

    @staticmethod
    def _down(dep: Deployment, ctx: HookContext, project_dir: Path) -> HookResult:
        down = ["down"] + (["--remove-orphans"] if option_flag(dep, "remove_orphans", False)
                           else [])
        proc = ctx.run(dep, compose_command(dep, ctx) + down, cwd=project_dir)
        if proc.status_code == 0:
            (project_dir / OWNER_FILE).unlink(missing_ok=True)
        return result_from_process(proc, {}, ctx.timeout_for(dep))


def compose_config(dep: Deployment) -> tuple[str, dict] | None:
    """The compose file text and its parsed form; None when there is no config."""
    config = dep.config
    if config in (None, "", {}):
        return None
    if isinstance(config, dict):
        return yaml.safe_dump(config, default_flow_style=False, sort_keys=False), config
    if not isinstance(config, str):
        raise InvalidDeployment(dep.label, "config",
                                "the docker-compose group needs a compose file (YAML text or an object)")
    try:
        parsed = yaml.safe_load(config)
    except yaml.YAMLError as exc:
        raise InvalidDeployment(dep.label, "config", f"is not valid YAML: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidDeployment(dep.label, "config", "must be a compose mapping")
    return config, parsed


def referenced_env_files(parsed: dict) -> set[str]:
    """Every `env_file` a service names, normalised (`./a.env` and `a.env` are one file).

    Services are top-level entries (the old format upstream read) or under `services`.
    """
    services = [v for v in parsed.values() if isinstance(v, dict)]
    if isinstance(parsed.get("services"), dict):
        services += [v for v in parsed["services"].values() if isinstance(v, dict)]
    names = set()
    for service in services:
        value = service.get("env_file")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item:
                names.add(os.path.normpath(item))
            elif isinstance(item, dict) and isinstance(item.get("path"), str):
                names.add(os.path.normpath(item["path"]))
    return names


def env_file_list(dep: Deployment, parsed: dict, project_dir: Path) -> list[tuple[str, str]]:
    """The `env_files` entries a service uses, as (relative path, content); paths confined.

    As upstream, an entry no service names is not written.
    """
    value = dep.input_values().get("env_files")
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            try:  # heat-agents read it as a Python literal
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise InvalidDeployment(dep.label, "inputs.env_files",
                                        "is not a JSON list") from None
    if not isinstance(value, list):
        raise InvalidDeployment(dep.label, "inputs.env_files", "must be a list")
    wanted = referenced_env_files(parsed)
    files = []
    for pos, item in enumerate(value):
        where = f"inputs.env_files[{pos}]"
        if not isinstance(item, dict):
            raise InvalidDeployment(dep.label, where, "must be an object")
        name = confined_name(dep, f"{where}.file_name", item.get("file_name"), project_dir)
        if name not in wanted:
            continue
        content = item.get("content", "")
        if not isinstance(content, str):
            content = json.dumps(content)
        files.append((name, content))
    return files


def confined_name(dep: Deployment, where: str, name: Any, project_dir: Path) -> str:
    """`name` normalised, relative and inside the project directory, or InvalidDeployment."""
    def refuse(why: str) -> InvalidDeployment:
        return InvalidDeployment(dep.label, where, f"{why}, not {name!r}")

    if not isinstance(name, str) or not name or "\0" in name:
        raise refuse("must be a file name relative to the project directory")
    if name.startswith("/"):
        raise refuse("must be relative to the project directory")
    if ".." in name.split("/"):
        raise refuse("may not contain '..'")
    clean = os.path.normpath(name)
    if clean in (".", COMPOSE_FILE, OWNER_FILE) or name.endswith("/"):
        raise refuse("must name a file other than the compose file")
    # A symlink already in the project directory must not lead the write outside it.
    root = os.path.realpath(project_dir)
    real = os.path.realpath(os.path.join(root, clean))
    if not real.startswith(root + os.sep):
        raise refuse(f"resolves to {real}, outside the project directory")
    return clean


def compose_command(dep: Deployment, ctx: HookContext) -> list[str]:
    """`HEAT_DOCKER_COMPOSE_CMD`, else docker-compose (upstream's default), else the
    `docker compose` plugin, else podman-compose."""
    if ctx.environ().get("HEAT_DOCKER_COMPOSE_CMD", "").strip():
        return tool_command(ctx, "HEAT_DOCKER_COMPOSE_CMD", "docker-compose", INSTALL_HINT)
    search = ctx.environ().get("PATH")
    path = shutil.which("docker-compose", path=search)
    if path:
        return [path]
    docker = shutil.which("docker", path=search)
    if docker and ctx.run(dep, [docker, "compose", "version"]).status_code == 0:
        return [docker, "compose"]
    path = shutil.which("podman-compose", path=search)
    if path:
        return [path]
    raise HookFailed(f"no compose tool: docker-compose is not installed ({INSTALL_HINT})")


HOOK = DockerComposeHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "docker-compose")


if __name__ == "__main__":
    raise SystemExit(main())
