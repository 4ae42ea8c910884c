"""Run a built-in hook the heat-config way, so images driven by the old agent can use it.

Deployment JSON on stdin, response JSON on stdout, working and outputs
directories from `HEAT_<TOOL>_WORKING` / `HEAT_<TOOL>_OUTPUTS`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from guestagent.deployments import parse_one
from guestagent.errors import GuestAgentError, InvalidDeployment
from guestagent.hooks.base import HookContext, HookResult


def context_for(tool: str) -> HookContext:
    """The context the old hooks used, with their environment overrides."""
    from guestagent.hooks import tool_dirs

    work, outputs = tool_dirs(tool)
    capture = Path(tempfile.mkdtemp(prefix=".capture-", dir=work))
    return HookContext(work_dir=work, outputs_dir=outputs, capture_dir=capture)


def with_id(data):
    """The deployment, named by its `name` when it has no `id`.

    heat-agents' hooks need only `name`, `inputs` and `config` (docker-compose
    never reads `id`); the agent itself still requires ids from the metadata.
    """
    if isinstance(data, dict) and not data.get("id") and isinstance(data.get("name"), str) \
            and data["name"].strip():
        return {**data, "id": data["name"]}
    return data


def run_standalone(hook, tool: str) -> int:
    """Read a deployment on stdin, run `hook`, print its response; exit 0 once it replied."""
    try:
        data = json.load(sys.stdin)
    except ValueError as exc:
        result = HookResult.failure(f"stdin is not a JSON deployment: {exc}")
    else:
        dep = parse_one(with_id(data))
        if dep.problem:
            result = HookResult.failure(str(dep.problem))
        else:
            ctx = context_for(tool)
            try:
                result = hook.run(dep, ctx)
            except InvalidDeployment as exc:
                result = HookResult.failure(str(exc))  # already names the deployment
            except GuestAgentError as exc:
                result = HookResult.failure(f"deployment {dep.label}: {exc}")
            finally:
                for name in ("stdout", "stderr"):
                    try:
                        os.unlink(ctx.capture_dir / name)
                    except FileNotFoundError:
                        pass
                os.rmdir(ctx.capture_dir)
    json.dump(result.response(), sys.stdout)
    sys.stdout.write("\n")
    return 0
