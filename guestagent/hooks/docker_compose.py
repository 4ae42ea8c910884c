"""The `docker-compose` hook: one compose project per deployment name, brought up or down.

The compose file is `<working>/<name>/docker-compose.yml` (from a YAML string,
or an object dumped with its booleans and nulls intact), the `env_files` input
is written beside it, and `up -d --remove-orphans` applies it. A DELETE action,
or the deployment disappearing (`cleanup`), brings the project down.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import yaml

from guestagent.deployments import Deployment
from guestagent.errors import HookFailed, InvalidDeployment
from guestagent.hooks.base import (Hook, HookContext, HookResult, result_from_process, tool_command,
                                   write_private)
from guestagent.state import safe_component

COMPOSE_FILE = "docker-compose.yml"
# Which deployment id last applied a project: only that one may bring it down on cleanup,
# since an UPDATE arrives as a new id with the same name while the old id disappears.
OWNER_FILE = ".deployment-id"
INSTALL_HINT = ("install the Docker Compose plugin, or `apt-get install docker-compose` "
                "or `apt-get install podman-compose`")


class DockerComposeHook(Hook):
    """Apply a compose project named after the deployment; `cleanup` removes it."""

    tool = "docker-compose"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        text = compose_text(dep)
        env_files = env_file_list(dep)
        project_dir = ctx.work_dir / safe_component(dep.name)
        write_private(project_dir / COMPOSE_FILE, text)
        for name, content in env_files:
            write_private(project_dir / name, content)
        if dep.action == "DELETE":
            return self._down(dep, ctx, project_dir)
        argv = compose_command(dep, ctx) + project_args(dep.name, project_dir)
        proc = ctx.run(dep, argv + ["up", "-d", "--remove-orphans"], cwd=project_dir,
                       env_extra=dep.input_values())
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
        argv = compose_command(dep, ctx) + project_args(dep.name, project_dir)
        proc = ctx.run(dep, argv + ["down", "--remove-orphans"], cwd=project_dir,
                       env_extra=dep.input_values())
        if proc.status_code == 0:
            (project_dir / OWNER_FILE).unlink(missing_ok=True)
        return result_from_process(proc, {}, ctx.timeout_for(dep))


def compose_text(dep: Deployment) -> str:
    """The compose file: the config string as is, or the object as YAML (types kept)."""
    if isinstance(dep.config, str) and dep.config.strip():
        try:
            parsed = yaml.safe_load(dep.config)
        except yaml.YAMLError as exc:
            raise InvalidDeployment(dep.label, "config", f"is not valid YAML: {exc}") from None
        if not isinstance(parsed, dict):
            raise InvalidDeployment(dep.label, "config", "must be a compose mapping")
        return dep.config
    if isinstance(dep.config, dict) and dep.config:
        return yaml.safe_dump(dep.config, default_flow_style=False, sort_keys=False)
    raise InvalidDeployment(dep.label, "config",
                            "the docker-compose group needs a compose file (YAML text or an object)")


def env_file_list(dep: Deployment) -> list[tuple[str, str]]:
    """The `env_files` input as (file name, content) pairs, names confined to the project dir."""
    value = dep.input_values().get("env_files")
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidDeployment(dep.label, "inputs.env_files", "is not a JSON list") from None
    if not isinstance(value, list):
        raise InvalidDeployment(dep.label, "inputs.env_files", "must be a list")
    files = []
    for pos, item in enumerate(value):
        where = f"inputs.env_files[{pos}]"
        if not isinstance(item, dict):
            raise InvalidDeployment(dep.label, where, "must be an object")
        name = item.get("file_name")
        if not isinstance(name, str) or not name or "/" in name or name in (".", "..") \
                or "\0" in name or name in (COMPOSE_FILE, OWNER_FILE):
            raise InvalidDeployment(dep.label, f"{where}.file_name",
                                    f"must be a plain file name beside the compose file, not {name!r}")
        content = item.get("content", "")
        if not isinstance(content, str):
            content = json.dumps(content)
        files.append((name, content))
    return files


def project_name(name: str) -> str:
    """A compose project name (lower-case letters, digits, '-' and '_') unique to `name`."""
    clean = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    if clean == name:
        return clean
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{clean[:40] or 'heat'}-{digest}"


def project_args(name: str, project_dir: Path) -> list[str]:
    return ["-p", project_name(name), "-f", str(project_dir / COMPOSE_FILE)]


def compose_command(dep: Deployment, ctx: HookContext) -> list[str]:
    """`HEAT_DOCKER_COMPOSE_CMD`, else `docker compose` (plugin), docker-compose, podman-compose."""
    if ctx.environ().get("HEAT_DOCKER_COMPOSE_CMD", "").strip():
        return tool_command(ctx, "HEAT_DOCKER_COMPOSE_CMD", "docker-compose", INSTALL_HINT)
    search = ctx.environ().get("PATH")
    docker = shutil.which("docker", path=search)
    if docker and ctx.run(dep, [docker, "compose", "version"]).status_code == 0:
        return [docker, "compose"]
    for tool in ("docker-compose", "podman-compose"):
        path = shutil.which(tool, path=search)
        if path:
            return [path]
    raise HookFailed("no compose tool: neither the `docker compose` plugin, docker-compose "
                     f"nor podman-compose is installed ({INSTALL_HINT})")


HOOK = DockerComposeHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "docker-compose")


if __name__ == "__main__":
    raise SystemExit(main())
