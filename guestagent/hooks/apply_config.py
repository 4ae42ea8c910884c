"""The `apply-config` hook: render the os-apply-config template tree against all the metadata.

As the old hook did, it runs the renderer on the accumulated metadata (not on
the deployment's own data): `HEAT_APPLY_CONFIG_CMD` when set (e.g. a real
`os-apply-config`), else guestagent's own renderer (`python -m guestagent.templates`),
which reads `OS_CONFIG_FILES` or the os-collect-config index.
"""

from __future__ import annotations

import sys

from guestagent.deployments import Deployment
from guestagent.hooks.base import Hook, HookContext, HookResult, result_from_process, tool_command


class ApplyConfigHook(Hook):
    """Run the template renderer as a child (timeout, process-group kill, capture)."""

    tool = "apply-config"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        if ctx.environ().get("HEAT_APPLY_CONFIG_CMD", "").strip():
            argv = tool_command(ctx, "HEAT_APPLY_CONFIG_CMD", "os-apply-config",
                                "install os-apply-config or unset HEAT_APPLY_CONFIG_CMD")
        else:
            argv = [sys.executable, "-m", "guestagent.templates"]
        proc = ctx.run(dep, argv)
        return result_from_process(proc, {}, ctx.timeout_for(dep))


HOOK = ApplyConfigHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "apply-config")


if __name__ == "__main__":
    raise SystemExit(main())
