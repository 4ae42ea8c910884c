"""The `apply-config` hook: render the os-apply-config template tree against the agent's metadata.

As heat-config's hook did, it renders the whole metadata (not the deployment's
own data): `HEAT_APPLY_CONFIG_CMD` when set (e.g. a real `os-apply-config`),
else guestagent's own renderer. Which metadata: run by an agent, the files of
that agent (the index in its os-collect-config directory, from the hook context
or `GUESTAGENT_OS_CONFIG_DIR`, which the agent exports); run as a standalone
heat-config hook, `OS_CONFIG_FILES` or os-collect-config's index, as before.
The renderer gets them as `OS_CONFIG_FILES`. No metadata file at all is a
failure, not an empty render.
"""

from __future__ import annotations

import sys
from pathlib import Path

from guestagent import templates
from guestagent.deployments import Deployment
from guestagent.hooks.base import (
    Hook,
    HookContext,
    HookResult,
    result_from_process,
    tool_command,
)

# Exported by the agent to everything it runs: its os-collect-config directory.
OS_CONFIG_DIR_ENV = "GUESTAGENT_OS_CONFIG_DIR"


def agent_config_dir(ctx: HookContext) -> Path | None:
    """The os-collect-config directory of the agent running this hook, if it said."""
    if ctx.os_config_dir is not None:
        return Path(ctx.os_config_dir)
    value = ctx.environ().get(OS_CONFIG_DIR_ENV, "")
    return Path(value) if value else None


def metadata_files(ctx: HookContext) -> tuple[list[Path], str]:
    """The metadata files to render against, and where that list came from (for messages)."""
    directory = agent_config_dir(ctx)
    if directory is not None:
        index = directory / templates.INDEX_NAME
        return templates.read_index(index), f"the agent's index {index}"
    environ = ctx.environ()
    if environ.get("OS_CONFIG_FILES"):
        return templates.config_files_from_env(environ), "OS_CONFIG_FILES"
    return templates.config_files_from_env(environ), f"the index {templates.DEFAULT_INDEX}"


class ApplyConfigHook(Hook):
    """Run the template renderer as a child (timeout, process-group kill, capture)."""

    tool = "apply-config"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        try:
            files, where = metadata_files(ctx)
        except templates.TemplateError as exc:
            return HookResult.failure(f"deployment {dep.label}: {exc}")
        override = ctx.environ().get("HEAT_APPLY_CONFIG_CMD", "").strip()
        present = [p for p in files if p.is_file()]
        # The operator's own command outside an agent finds its metadata as it always did.
        if not present and (agent_config_dir(ctx) is not None or not override):
            listed = ", ".join(str(p) for p in files) or "no file"
            return HookResult.failure(
                f"deployment {dep.label}: no metadata to render the templates against "
                f"({where} lists {listed}; none exists)")
        if override:
            argv = tool_command(ctx, "HEAT_APPLY_CONFIG_CMD", "os-apply-config",
                                "install os-apply-config or unset HEAT_APPLY_CONFIG_CMD")
        else:
            # No fallback files: only this agent's metadata, not the boot data of another.
            argv = [sys.executable, "-m", "guestagent.templates", "--fallback-metadata"]
        env = {"OS_CONFIG_FILES": ":".join(str(p) for p in files)}
        proc = ctx.run(dep, argv, env_extra=env)
        return result_from_process(proc, {}, ctx.timeout_for(dep))


HOOK = ApplyConfigHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "apply-config")


if __name__ == "__main__":
    raise SystemExit(main())
