"""The `puppet` hook: `puppet apply` the config as a manifest, inputs as facts (and hiera data).

Command line, environment and files as heat-agents' hook-puppet:
`puppet apply --color false --detailed-exitcodes --logdest console
[--modulepath M] [--tags T] [--debug --logdest /var/log/puppet/heat-debug.log]
[--verbose --logdest /var/log/puppet/heat-verbose.log] <work>/<id>.pp`, inputs as
`FACTER_<name>`, `FACTER_fqdn` from `hostname -f`, `FACTER_heat_outputs_path`,
hiera data in `<datadir>/heat_config_<name>.json` (then `FACTER_deploy_config_name`),
and a copy of puppet's stdout/stderr in `<logdir>/<creation time>-<id>-std{out,err}.log`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from guestagent.deployments import Deployment
from guestagent.hooks.base import (
    Hook,
    HookContext,
    HookResult,
    clear_outputs,
    option_flag,
    option_text,
    read_outputs,
    result_from_process,
    tool_command,
    write_destination,
    write_private,
)
from guestagent.state import safe_component

INSTALL_HINT = "install it with `apt-get install puppet` or the puppet-agent package"
HIERA_DATADIR = "/etc/puppet/hieradata"
DEBUG_LOG = "/var/log/puppet/heat-debug.log"
VERBOSE_LOG = "/var/log/puppet/heat-verbose.log"
# --detailed-exitcodes: 2 means "changes applied", a success; 4 and 6 mean failures.
SUCCESS_CODES = (0, 2)


class PuppetHook(Hook):
    """Write `<id>.pp` and run `puppet apply --detailed-exitcodes` on it."""

    tool = "puppet"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        if not isinstance(dep.config, str):
            return HookResult.failure(
                f"deployment {dep.label}: field 'config': the puppet group needs a manifest string")
        argv = tool_command(ctx, "HEAT_PUPPET_CMD", "puppet", INSTALL_HINT)
        argv += puppet_options(dep)
        manifest = write_private(ctx.work_dir / f"{safe_component(dep.id)}.pp", dep.config)
        outputs_base = clear_outputs(dep, ctx)
        inputs = dep.input_values()
        facts = {}
        fqdn = self._fqdn(dep, ctx)
        if fqdn:
            facts["FACTER_fqdn"] = fqdn
        if option_flag(dep, "enable_facter", True):
            facts.update({f"FACTER_{name}": "" if value is None else value
                          for name, value in inputs.items()})
        if option_flag(dep, "enable_hiera", False):
            self._write_hiera(dep, ctx, inputs)
            facts["FACTER_deploy_config_name"] = dep.name
        facts["FACTER_heat_outputs_path"] = str(outputs_base)
        proc = ctx.run(dep, argv + [manifest], env_extra=facts)
        self._keep_logs(dep, ctx, proc)
        result = result_from_process(proc, read_outputs(dep, outputs_base), ctx.timeout_for(dep))
        result.streams_first = True  # heat-agents' puppet hook puts the streams first
        if not proc.timed_out and proc.status_code in SUCCESS_CODES:
            result.status_code = 0
        return result

    @staticmethod
    def _fqdn(dep: Deployment, ctx: HookContext) -> str | None:
        # heat-agents sets FACTER_fqdn from `hostname -f`; without the tool the fact is left to facter.
        try:
            proc = ctx.run(dep, ["hostname", "-f"])
        except OSError:
            return None
        if proc.status_code != 0:
            return None
        return proc.stdout().strip() or None

    @staticmethod
    def _write_hiera(dep: Deployment, ctx: HookContext, inputs: dict) -> None:
        # Inputs may hold secrets: the data file is 0600 like every working file.
        datadir = Path(ctx.environ().get("HEAT_PUPPET_HIERA_DATADIR", HIERA_DATADIR))
        values = {name: "" if value is None else value for name, value in inputs.items()}
        write_destination(datadir / f"heat_config_{safe_component(dep.name)}.json",
                          json.dumps(values))

    @staticmethod
    def _keep_logs(dep: Deployment, ctx: HookContext, proc) -> None:
        """Copy puppet's output where heat-agents kept it (`HEAT_PUPPET_LOGDIR`)."""
        logdir = Path(ctx.environ().get("HEAT_PUPPET_LOGDIR")
                      or ctx.outputs_dir.parent / "deployed")
        created = dep.raw.get("creation_time")
        if not isinstance(created, str) or not created:
            created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        base = f"{re.sub('[:T]', '-', created)}-{safe_component(dep.id)}"
        write_private(logdir / f"{base}-stdout.log", proc.stdout())
        write_private(logdir / f"{base}-stderr.log", proc.stderr())


def puppet_options(dep: Deployment) -> list[str]:
    """Everything between the tool and the manifest, in heat-agents' order."""
    # --color false: Heat shows deploy_stdout/stderr to users, where ANSI codes are noise.
    argv = ["apply", "--color", "false", "--detailed-exitcodes", "--logdest", "console"]
    for option, flag in (("modulepath", "--modulepath"), ("tags", "--tags")):
        value = option_text(dep, option)
        if value:
            argv += [flag, value]
    if option_flag(dep, "enable_debug", False):
        argv += ["--debug", "--logdest", DEBUG_LOG]
    if option_flag(dep, "enable_verbose", False):
        argv += ["--verbose", "--logdest", VERBOSE_LOG]
    return argv


HOOK = PuppetHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "puppet")


if __name__ == "__main__":
    raise SystemExit(main())
