"""The `component` hook (OS::Heat::SoftwareComponent) for images still driven by heat-config.

The agent resolves components itself (deployments.resolve_component); this
module lets the old 55-heat-config run one too: pick the config whose
`actions` hold the current action and run it with the hook its `tool` names.
"""

from __future__ import annotations

from guestagent.deployments import Deployment, resolve_component
from guestagent.hooks.base import Hook, HookContext, HookResult


class ComponentHook(Hook):
    """Resolve the entry for the deployment's action and hand it to that tool's hook."""

    tool = "component"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        resolved = resolve_component(dep)
        if resolved is None:
            return HookResult(0, stdout=f"no component config for action {dep.action}\n")
        return _hook_for(resolved, ctx).run(resolved, ctx)

    def cleanup(self, dep: Deployment, ctx: HookContext) -> HookResult | None:
        resolved = resolve_component(dep)
        cleanup = getattr(_hook_for(resolved, ctx), "cleanup", None) if resolved else None
        return cleanup(resolved, ctx) if cleanup else None


def _hook_for(dep: Deployment, ctx: HookContext):
    from guestagent.hooks import find
    return find(dep.group, ctx.hooks_dirs)


HOOK = ComponentHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "component")


if __name__ == "__main__":
    raise SystemExit(main())
