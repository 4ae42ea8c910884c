"""The `docker-cmd` hook: the containers a deployment describes, run through the Docker SDK.

`config` (YAML text or an object) maps container names to their properties,
as Heat's docker-cmd hook took them: image, command, entrypoint, environment,
env_file, volumes, volumes_from, ports, restart, labels, net, pid, privileged,
user, hostname, working_dir, cap_add, cap_drop, detach, start_order, action
(run or exec) and exit_codes. Containers are labelled with the deployment, so
a re-run or an UPDATE (a new id with the same name) replaces them, a DELETE
removes them, and `cleanup` removes those of a deployment gone from metadata.
Keys it does not know are ignored, named in one line of deploy_stderr.

With `HEAT_DOCKER_CMD` set, the containers go through that command line tool
instead, exactly as heat-agents' hook ran them (see docker_cmd_cli).
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from guestagent.deployments import Deployment
from guestagent.errors import HookFailed, InvalidDeployment
from guestagent.hooks import docker_cmd_cli
from guestagent.hooks.base import Hook, HookContext, HookResult

MANAGED_BY = "docker-cmd"
SDK_HINT = "install the Docker SDK for Python: `pip install docker` or `apt-get install python3-docker`"
# Seconds one API call may take; a foreground container's wait uses the deployment's timeout.
API_TIMEOUT = 120
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # what the engine accepts
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
KNOWN = frozenset({"image", "command", "entrypoint", "environment", "env_file", "volumes",
                   "volumes_from", "ports", "restart", "labels", "net", "network_mode", "pid",
                   "privileged", "user", "hostname", "working_dir", "cap_add", "cap_drop",
                   "detach", "start_order", "action", "exit_codes"})


@dataclass
class ContainerSpec:
    """One container entry of the config, validated and in the SDK's terms."""

    name: str
    action: str
    command: list[str] | None
    exit_codes: tuple[int, ...]
    detach: bool
    start_order: int
    user: str | None
    privileged: bool
    create: dict[str, Any] = field(default_factory=dict)   # containers.create keyword arguments


class DockerCmdHook(Hook):
    """Run (or exec in) the deployment's containers; `cleanup` removes a gone deployment's."""

    tool = "docker-cmd"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        config = load_config(dep)
        if docker_cmd_cli.wanted(ctx):
            return docker_cmd_cli.run(dep, ctx, config,
                                      unknown_warning(config, docker_cmd_cli.KNOWN))
        result = self._run_sdk(dep, ctx, config)
        result.stderr = unknown_warning(config, KNOWN) + result.stderr
        return result

    @staticmethod
    def _run_sdk(dep: Deployment, ctx: HookContext, config: dict) -> HookResult:
        specs = container_specs(dep, config)
        client, errors = connect(ctx)
        out: list[str] = []
        try:
            # A re-run, an UPDATE (new id, same name) and a DELETE all start by removing
            # what this deployment's name had running.
            out += remove(client, {"deploy_name": dep.name})
            if dep.action == "DELETE":
                return HookResult(0, stdout=text(out))
            for spec in specs:
                status, lines = run_one(client, errors, dep, spec, ctx)
                out += lines
                if status not in spec.exit_codes:
                    return HookResult.failure(f"container {spec.name}: exit status {status}, "
                                              f"expected one of {list(spec.exit_codes)}",
                                              status_code=status or 1, stdout=text(out))
        except errors.DockerException as exc:
            return HookResult.failure(f"deployment {dep.label}: docker: {explain(exc)}",
                                      stdout=text(out))
        finally:
            client.close()
        return HookResult(0, stdout=text(out))

    def cleanup(self, dep: Deployment, ctx: HookContext) -> HookResult:
        """Remove the containers this (vanished) deployment id started."""
        if docker_cmd_cli.wanted(ctx):
            return docker_cmd_cli.cleanup(dep, ctx)
        client, errors = connect(ctx)
        try:
            return HookResult(0, stdout=text(remove(client, {"config_id": dep.id})))
        except errors.DockerException as exc:
            return HookResult.failure(f"deployment {dep.label}: docker: {explain(exc)}")
        finally:
            client.close()


def connect(ctx: HookContext):
    """A Docker SDK client for the engine DOCKER_HOST names, and the SDK's errors module."""
    try:
        import docker
        import docker.errors
    except ImportError:
        raise HookFailed(f"the Docker SDK for Python is not installed ({SDK_HINT})") from None
    environ = dict(ctx.environ())
    try:
        return docker.from_env(environment=environ, timeout=API_TIMEOUT), docker.errors
    except docker.errors.DockerException as exc:
        where = environ.get("DOCKER_HOST") or "the default socket"
        raise HookFailed(f"cannot reach the Docker engine at {where} (is docker.io installed "
                         f"and dockerd running?): {explain(exc)}") from None


def remove(client, match: dict[str, str]) -> list[str]:
    """Force-remove our containers whose labels hold `match`; one line per container."""
    filters = {"label": [f"managed_by={MANAGED_BY}"] + [f"{k}={v}" for k, v in match.items()]}
    lines = []
    for container in client.containers.list(all=True, filters=filters):
        container.remove(force=True)
        lines.append(f"removed container {container.name} ({container.short_id})")
    return lines


def run_one(client, errors, dep: Deployment, spec: ContainerSpec, ctx: HookContext
            ) -> tuple[int, list[str]]:
    """Run or exec one entry; its exit status (0 for a started detached container) and lines."""
    if spec.action == "exec":
        target = find_ours(client, dep, spec.command[0]) or spec.command[0]
        result = client.containers.get(target).exec_run(
            spec.command[1:], user=spec.user or "", privileged=spec.privileged)
        output = (result.output or b"").decode("utf-8", "replace")
        return result.exit_code, [f"exec in {target}: exit status {result.exit_code}", output]
    labels = dict(spec.create.get("labels") or {})
    inputs = dep.input_values()
    labels.update(managed_by=MANAGED_BY, config_id=dep.id, deploy_name=dep.name,
                  container_name=spec.name,
                  deploy_stack_id=str(inputs.get("deploy_stack_id") or ""),
                  deploy_resource_name=str(inputs.get("deploy_resource_name") or ""))
    name = spec.name
    if exists(client, errors, name):
        name = f"{spec.name}-{secrets.token_hex(4)}"  # the name belongs to someone else
    container = client.containers.create(
        name=name, command=spec.command, user=spec.user, privileged=spec.privileged,
        **{**spec.create, "labels": labels})
    container.start()
    line = f"started container {name} ({container.short_id}) from {spec.create['image']}"
    if spec.detach:
        return 0, [line]
    timeout = ctx.timeout_for(dep)
    try:
        status = container.wait(timeout=timeout)["StatusCode"]
    except errors.DockerException:
        container.kill()
        return 124, [line, f"container {name} did not finish within {timeout:g} s; killed"]
    return status, [line, container.logs().decode("utf-8", "replace")]


def find_ours(client, dep: Deployment, container_name: str) -> str | None:
    """The real name of this deployment's container `container_name` (it may carry a suffix)."""
    filters = {"label": [f"managed_by={MANAGED_BY}", f"config_id={dep.id}",
                         f"container_name={container_name}"]}
    found = client.containers.list(all=True, filters=filters)
    return found[0].name if found else None


def exists(client, errors, name: str) -> bool:
    try:
        client.containers.get(name)
        return True
    except errors.NotFound:
        return False


def explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def text(lines: list[str]) -> str:
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines if line)


# -- config validation ------------------------------------------------------

def load_config(dep: Deployment) -> dict:
    """The config as a mapping of container names to properties (YAML text or an object)."""
    config = dep.config
    if isinstance(config, str):
        try:
            config = yaml.safe_load(config) if config.strip() else {}
        except yaml.YAMLError as exc:
            raise InvalidDeployment(dep.label, "config", f"is not valid YAML: {exc}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise InvalidDeployment(dep.label, "config", "must map container names to properties")
    return config


def unknown_warning(config: dict, known: frozenset) -> str:
    """One stderr line naming the container keys that will be ignored ("" when none)."""
    ignored = [f"{name}.{key}" for name, props in config.items() if isinstance(props, dict)
               for key in props if key not in known]
    if not ignored:
        return ""
    # heat-agents ignored keys it did not know (such as `name`): so do we, but say so.
    return f"guestagent: docker-cmd ignored unknown container keys: {', '.join(ignored)}\n"


def container_specs(dep: Deployment, config: dict) -> list[ContainerSpec]:
    """Every container entry, validated before anything starts, in start order."""
    specs = [_spec(dep, name, props) for name, props in config.items()]
    return sorted(specs, key=lambda s: (s.start_order, s.name))


def _spec(dep: Deployment, name: Any, props: Any) -> ContainerSpec:
    def bad(key: str, why: str) -> InvalidDeployment:
        return InvalidDeployment(dep.label, f"config.{name}.{key}" if key else f"config.{name}", why)

    if not isinstance(name, str) or not CONTAINER_NAME.match(name):
        raise InvalidDeployment(dep.label, f"config.{name}",
                                "a container name is 2 or more of [a-zA-Z0-9_.-], "
                                "starting with a letter or digit")
    if not isinstance(props, dict):
        raise bad("", "must be an object of container properties")
    action = props.get("action", "run")
    if action not in ("run", "exec"):
        raise bad("action", f"must be run or exec, not {action!r}")
    command = _argv(props.get("command"), bad, "command")
    if action == "exec" and not command:
        raise bad("command", "exec needs [container, command...]")
    exit_codes = props.get("exit_codes", [0])
    if not isinstance(exit_codes, list) or not all(_is_int(c) for c in exit_codes):
        raise bad("exit_codes", "must be a list of integers")
    start_order = props.get("start_order", 0)
    if not _is_int(start_order):
        raise bad("start_order", "must be an integer")
    spec = ContainerSpec(name=name, action=action, command=command,
                         exit_codes=tuple(exit_codes), detach=_bool(props, "detach", True, bad),
                         start_order=start_order, user=_str(props, "user", bad),
                         privileged=_bool(props, "privileged", False, bad))
    if action == "exec":
        return spec
    image = props.get("image")
    if not isinstance(image, str) or not image:
        raise bad("image", "missing or not a string")
    create: dict[str, Any] = {"image": image, "detach": True}
    entrypoint = _argv(props.get("entrypoint"), bad, "entrypoint")
    if entrypoint:
        create["entrypoint"] = entrypoint
    environment = _env_files(props.get("env_file"), bad)
    environment.update(_pairs(props.get("environment"), bad, "environment"))
    if environment:
        create["environment"] = environment
    labels = _pairs(props.get("labels"), bad, "labels")
    if labels:
        create["labels"] = labels
    for key, sdk in (("volumes", "volumes"), ("volumes_from", "volumes_from"),
                     ("cap_add", "cap_add"), ("cap_drop", "cap_drop")):
        values = props.get(key)
        if values is not None:
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise bad(key, "must be a list of strings")
            create[sdk] = [v for v in values if v]
    if props.get("ports") is not None:
        create["ports"] = _ports(props["ports"], bad)
    if props.get("restart") is not None:
        create["restart_policy"] = _restart(props["restart"], bad)
    for key, sdk in (("net", "network_mode"), ("network_mode", "network_mode"),
                     ("pid", "pid_mode"), ("hostname", "hostname"),
                     ("working_dir", "working_dir")):
        value = _str(props, key, bad)
        if value:
            create[sdk] = value
    return replace(spec, create=create)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str(props: dict, key: str, bad) -> str | None:
    value = props.get(key)
    if value is not None and not isinstance(value, str):
        raise bad(key, "must be a string")
    return value


def _bool(props: dict, key: str, default: bool, bad) -> bool:
    value = props.get(key, default)
    if not isinstance(value, bool):
        raise bad(key, "must be true or false")
    return value


def _argv(value: Any, bad, key: str) -> list[str] | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise bad(key, "must be a string or a list of strings")


def _pairs(value: Any, bad, key: str) -> dict[str, str]:
    """`KEY=VALUE` strings or a mapping, as a dict of strings."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        pairs = {}
        for item in value:
            if item:
                k, _, v = item.partition("=")
                pairs[k] = v
        return pairs
    raise bad(key, "must be a list of KEY=VALUE strings or an object")


def _env_files(value: Any, bad) -> dict[str, str]:
    """The variables of the `env_file` files (KEY=VALUE lines; # comments)."""
    if value is None:
        return {}
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise bad("env_file", "must be a path or a list of paths")
    pairs: dict[str, str] = {}
    for path in filter(None, paths):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise bad("env_file", f"cannot read {path}: {exc.strerror}") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                pairs[k.strip()] = v
    return pairs


def _ports(value: Any, bad) -> dict[str, Any]:
    """Compose-style port strings ("8080:80", "127.0.0.1:8080:80/udp", "80") for the SDK."""
    if not isinstance(value, list):
        raise bad("ports", "must be a list")
    ports: dict[str, Any] = {}
    for item in value:
        parts = str(item).split(":")
        if not parts[-1] or len(parts) > 3:
            raise bad("ports", f"cannot read port {item!r}")
        container = parts[-1] if "/" in parts[-1] else f"{parts[-1]}/tcp"
        if len(parts) == 1:
            ports[container] = None
        elif len(parts) == 2:
            ports[container] = int(parts[0]) if parts[0].isdigit() else None
        else:
            ports[container] = (parts[0], int(parts[1]) if parts[1].isdigit() else None)
    return ports


def _restart(value: Any, bad) -> dict[str, Any]:
    if not isinstance(value, str) or value.split(":")[0] not in RESTART_POLICIES:
        raise bad("restart", f"must be one of {', '.join(RESTART_POLICIES)}[:N]")
    name, _, count = value.partition(":")
    policy: dict[str, Any] = {"Name": "" if name == "no" else name}
    if name == "on-failure" and count:
        if not count.isdigit():
            raise bad("restart", "on-failure:N needs a number")
        policy["MaximumRetryCount"] = int(count)
    return policy


HOOK = DockerCmdHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "docker-cmd")


if __name__ == "__main__":
    raise SystemExit(main())
