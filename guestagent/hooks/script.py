"""The `script` hook: run `config` as an executable with inputs in the environment."""

from __future__ import annotations

from guestagent.deployments import Deployment
from guestagent.hooks.base import (
    Hook,
    HookContext,
    HookResult,
    clear_outputs,
    read_outputs,
    result_from_process,
    write_private,
)
from guestagent.state import safe_component


class ScriptHook(Hook):
    """Write the config to a 0700 file and execute it (shebang honoured, else /bin/sh)."""

    tool = "script"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        config = dep.config if dep.config is not None else ""
        if not isinstance(config, str):
            return HookResult.failure(
                f"deployment {dep.label}: field 'config': the script group needs a string")
        path = write_private(ctx.work_dir / safe_component(dep.id), config, mode=0o700)
        outputs_base = clear_outputs(dep, ctx)
        env = dep.input_values()
        env["heat_outputs_path"] = str(outputs_base)
        argv = [path] if config.startswith("#!") else ["/bin/sh", path]
        proc = ctx.run(dep, argv, env_extra=env)
        return result_from_process(proc, read_outputs(dep, outputs_base), ctx.timeout_for(dep))


HOOK = ScriptHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "script")


if __name__ == "__main__":
    raise SystemExit(main())
