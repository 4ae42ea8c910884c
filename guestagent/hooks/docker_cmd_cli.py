"""docker-cmd through a container CLI: what heat-agents' hook did when `HEAT_DOCKER_CMD` is set.

The command (`docker`, `podman`, or a wrapper; shell-split) is started with
heat-agents' command lines, in the same order:
`inspect --format exists <name>` until a free name is found (the container's own
name, else `<name>-<8 random [a-z0-9]>`), `run --name <name>` with the labels
deploy_stack_id, deploy_resource_name, config_id, container_name and
managed_by=docker-cmd and the container's flags; for `action: exec`,
`ps -a --filter label=container_name=<c> --filter label=config_id=<id> --format {{.Names}}`
to find the container's real name, then `exec`. A status outside `exit_codes`
(default [0]) makes it the deployment's status; later containers still run.
`cleanup` removes a vanished deployment's containers (`ps -q -a` with its
config_id, `rm -f`) and renames suffixed containers back to their own name.
"""

from __future__ import annotations

import secrets
import shlex
import string
from collections.abc import Callable
from typing import Any

from guestagent.deployments import Deployment
from guestagent.errors import InvalidDeployment
from guestagent.hooks.base import HookContext, HookResult, tool_command

VARIABLE = "HEAT_DOCKER_CMD"
INSTALL_HINT = "install docker.io or podman"
MANAGED_BY = "docker-cmd"
# The container keys heat-agents' hook read; any other is ignored (with a warning line).
KNOWN = frozenset({"action", "exit_codes", "start_order", "detach", "env_file", "environment",
                   "net", "pid", "privileged", "restart", "user", "volumes", "volumes_from",
                   "image", "command"})
SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def wanted(ctx: HookContext) -> bool:
    """True when the operator set HEAT_DOCKER_CMD: containers go through that command."""
    return bool(ctx.environ().get(VARIABLE, "").strip())


class Cli:
    """The container command, started for one deployment through the shared runner."""

    def __init__(self, dep: Deployment, ctx: HookContext):
        self.dep, self.ctx = dep, ctx
        self.argv = tool_command(ctx, VARIABLE, "docker", INSTALL_HINT)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        proc = self.ctx.run(self.dep, self.argv + list(args))
        return proc.status_code, proc.stdout(), proc.stderr()

    def exists(self, name: str) -> bool:
        status, out, _ = self("inspect", "--format", "exists", name)
        return status == 0 and bool(out.strip())

    def free_name(self, container: str) -> str:
        name = container
        while self.exists(name):
            name = f"{container}-{''.join(secrets.choice(SUFFIX_ALPHABET) for _ in range(8))}"
        return name

    def real_name(self, container: str) -> str:
        """The name this deployment's `container` runs under (it may carry a suffix)."""
        status, out, _ = self("ps", "-a", "--filter", f"label=container_name={container}",
                              "--filter", f"label=config_id={self.dep.id}",
                              "--format", "{{.Names}}")
        names = out.split() if status == 0 else []
        return names[0] if names else container


def run(dep: Deployment, ctx: HookContext, config: dict, warning: str) -> HookResult:
    """Run the deployment's containers through the CLI; the reply heat-agents gave."""
    if dep.action == "DELETE" or not config:
        return HookResult(0, stderr=warning)  # removal happens in cleanup, as upstream
    for name, props in config.items():
        check(dep, name, props)
    cli = Cli(dep, ctx)
    outs: list[str] = []
    errs: list[str] = [warning.rstrip("\n")] if warning else []
    status = 0
    # A stable sort: equal start_order keeps the config's order, as upstream.
    for name in sorted(config, key=lambda n: config[n].get("start_order", 0)):
        props = config[name]
        if props.get("action", "run") == "exec":
            argv = ["exec"] + exec_args(props, cli.real_name)
        else:
            argv = ["run", "--name", cli.free_name(name)] + labels(dep, name) + run_args(props)
        code, out, err = cli(*argv)
        if out:
            outs.append(out)
        if err:
            errs.append(err)
        if code not in props.get("exit_codes", [0]):
            status = code
    return HookResult(status, stdout="\n".join(outs), stderr="\n".join(errs))


def cleanup(dep: Deployment, ctx: HookContext) -> HookResult:
    """Remove the vanished deployment's containers, then give suffixed ones their own name."""
    cli = Cli(dep, ctx)
    lines = []
    code, out, err = cli("ps", "-q", "-a", "--filter", f"label=managed_by={MANAGED_BY}",
                         "--filter", f"label=config_id={dep.id}")
    if code != 0:
        return HookResult.failure(f"deployment {dep.label}: listing its containers: "
                                  f"exit status {code}", stderr=err)
    failed = 0
    for container in out.split():
        code, _, err = cli("rm", "-f", container)
        lines.append(f"removed container {container}" if code == 0
                     else f"could not remove container {container}: {err.strip()}")
        failed = failed or code
    lines += rename_containers(cli)
    return HookResult(failed, stdout="".join(line + "\n" for line in lines))


def rename_containers(cli: Cli) -> list[str]:
    """Rename each container whose `container_name` label differs from its name, if free."""
    code, out, _ = cli("ps", "-a", "--format", '{{.Names}} {{.Label "container_name"}}')
    if code != 0:
        # podman has no .Label in its ps templates (upstream's rename step failed there).
        code, out, _ = cli("ps", "-a", "--format", '{{.Names}} {{index .Labels "container_name"}}')
    if code != 0:
        return []
    rows = [line.split() for line in out.splitlines() if line.split()]
    present = {row[0] for row in rows}
    lines = []
    for current, desired in sorted((row[0], row[-1]) for row in rows if len(row) > 1):
        # `present` stays as listed (as upstream): a name freed by this pass waits for the next.
        if current != desired and desired not in present \
                and cli("rename", current, desired)[0] == 0:
            lines.append(f"renamed container {current} to {desired}")
    return lines


def labels(dep: Deployment, container: str) -> list[str]:
    inputs = dep.input_values()
    pairs = [("deploy_stack_id", inputs.get("deploy_stack_id")),
             ("deploy_resource_name", inputs.get("deploy_resource_name")),
             ("config_id", dep.id), ("container_name", container), ("managed_by", MANAGED_BY)]
    argv = []
    for key, value in pairs:
        argv += ["--label", f"{key}={value}"]  # None prints as "None", as upstream's did
    return argv


def run_args(props: dict) -> list[str]:
    """The flags, image and command of `run`, in heat-agents' order."""
    argv = []
    if props.get("detach", True):
        argv.append("--detach=true")
    env_file = props.get("env_file")
    if isinstance(env_file, list):
        argv += [f"--env-file={f}" for f in env_file if f]
    elif env_file is not None:
        argv.append(f"--env-file={env_file}")
    argv += [f"--env={v}" for v in pairs(props.get("environment")) if v]
    for key in ("net", "pid"):
        if key in props:
            argv.append(f"--{key}={props[key]}")
    if "privileged" in props:
        argv.append(f"--privileged={str(props['privileged']).lower()}")
    for key in ("restart", "user"):
        if key in props:
            argv.append(f"--{key}={props[key]}")
    argv += [f"--volume={v}" for v in props.get("volumes") or [] if v]
    # Upstream spelled this --volumes_from, which docker and podman reject.
    argv += [f"--volumes-from={v}" for v in props.get("volumes_from") or [] if v]
    argv.append(str(props.get("image", "")))
    return argv + command(props.get("command"))


def exec_args(props: dict, real_name: Callable[[str], str]) -> list[str]:
    argv = []
    if "privileged" in props:
        argv.append(f"--privileged={str(props['privileged']).lower()}")
    if "user" in props:
        argv.append(f"--user={props['user']}")
    cmd = command(props.get("command"))
    return argv + [real_name(cmd[0])] + cmd[1:]


def command(value: Any) -> list[str]:
    """A command as argv: a list as is, a string split as a shell would (quotes kept together)."""
    if not value:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return shlex.split(str(value))


def pairs(value: Any) -> list[str]:
    """`environment` as KEY=VALUE strings (a list as is; a mapping joined)."""
    if isinstance(value, dict):
        return [f"{k}={'' if v is None else v}" for k, v in value.items()]
    return [str(v) for v in value or [] if v]


def check(dep: Deployment, name: str, props: Any) -> None:
    """Refuse what upstream would have crashed on, naming the deployment and field."""
    def bad(key: str, why: str) -> InvalidDeployment:
        return InvalidDeployment(dep.label, f"config.{name}.{key}" if key else f"config.{name}", why)

    if not isinstance(props, dict):
        raise bad("", "must be an object of container properties")
    action = props.get("action", "run")
    if action not in ("run", "exec"):
        raise bad("action", f"must be run or exec, not {action!r}")
    if action == "exec" and not command(props.get("command")):
        raise bad("command", "exec needs [container, command...]")
    codes = props.get("exit_codes", [0])
    if not isinstance(codes, list) or not all(isinstance(c, int) and not isinstance(c, bool)
                                              for c in codes):
        raise bad("exit_codes", "must be a list of integers")
    order = props.get("start_order", 0)
    if not isinstance(order, int) or isinstance(order, bool):
        raise bad("start_order", "must be an integer")
    for key in ("volumes", "volumes_from"):
        if props.get(key) is not None and not isinstance(props[key], list):
            raise bad(key, "must be a list")
    env = props.get("environment")
    if env is not None and not isinstance(env, (list, dict)):
        raise bad("environment", "must be a list of KEY=VALUE strings or an object")
