"""The `puppet` hook: `puppet apply` the config as a manifest, inputs as facts (and hiera data)."""

from __future__ import annotations

import json
from pathlib import Path

from guestagent.deployments import Deployment
from guestagent.hooks.base import (Hook, HookContext, HookResult, clear_outputs, option_flag,
                                   option_text, read_outputs, result_from_process, tool_command,
                                   write_destination, write_private)
from guestagent.state import safe_component

INSTALL_HINT = "install it with `apt-get install puppet` or the puppet-agent package"
HIERA_DATADIR = "/etc/puppet/hieradata"
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
        argv += ["apply", "--detailed-exitcodes", "--logdest", "console"]
        for option, flag in (("modulepath", "--modulepath"), ("tags", "--tags")):
            value = option_text(dep, option)
            if value:
                argv += [flag, value]
        if option_flag(dep, "enable_debug", False):
            argv.append("--debug")
        if option_flag(dep, "enable_verbose", False):
            argv.append("--verbose")
        manifest = write_private(ctx.work_dir / f"{safe_component(dep.id)}.pp", dep.config)
        outputs_base = clear_outputs(dep, ctx)
        inputs = dep.input_values()
        env = {}
        if option_flag(dep, "enable_facter", True):
            env = {f"FACTER_{name}": value for name, value in inputs.items()}
            env["FACTER_heat_outputs_path"] = str(outputs_base)
        if option_flag(dep, "enable_hiera", False):
            self._write_hiera(dep, ctx, inputs)
        proc = ctx.run(dep, argv + [manifest], env_extra=env)
        result = result_from_process(proc, read_outputs(dep, outputs_base), ctx.timeout_for(dep))
        if not proc.timed_out and proc.status_code in SUCCESS_CODES:
            result.status_code = 0
        return result

    @staticmethod
    def _write_hiera(dep: Deployment, ctx: HookContext, inputs: dict) -> None:
        # Inputs may hold secrets: the data file is 0600 like every working file.
        datadir = Path(ctx.environ().get("HEAT_PUPPET_HIERA_DATADIR", HIERA_DATADIR))
        write_destination(datadir / f"heat_config_{safe_component(dep.name)}.json",
                      json.dumps(inputs, indent=1, sort_keys=True))


HOOK = PuppetHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "puppet")


if __name__ == "__main__":
    raise SystemExit(main())
