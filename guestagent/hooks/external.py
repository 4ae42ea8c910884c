"""Runner for heat-config hooks: any executable named after the group.

ABI: started with no arguments, the deployment JSON on stdin (exactly as Heat
sent it), one JSON object on stdout, which is signalled as written (only
oversized text is trimmed). A non-zero exit is a failure whatever stdout says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from guestagent import jsondoc
from guestagent.deployments import Deployment
from guestagent.hooks.base import Hook, HookContext, HookResult

# A hook reply larger than this is refused rather than parsed into memory (or kept on disk).
MAX_REPLY = 16 * 1024 * 1024


@dataclass
class ExternalHook(Hook):
    """One executable hook found on disk."""

    path: Path

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        stdin = json.dumps(dep.hook_input()).encode()
        # The reply is parsed whole: keep its head up to the limit, no tail.
        proc = ctx.run(dep, [self.path], stdin=stdin, stdout_keep=(MAX_REPLY, 0))
        stderr = proc.stderr()
        if proc.timed_out:
            return HookResult.failure(
                f"hook {self.path} did not finish within {ctx.timeout_for(dep):g} s; "
                "its process group was killed", status_code=proc.status_code, stderr=stderr)
        size = proc.printed.get("stdout", 0)
        if proc.capture_errors:
            return HookResult.failure(
                f"hook {self.path}: output not kept: " + "; ".join(proc.capture_errors.values()),
                status_code=proc.status_code or 1, stderr=stderr)
        if size > MAX_REPLY:
            return HookResult.failure(
                f"hook {self.path} printed {size} bytes, more than the {MAX_REPLY} allowed; "
                f"the first {MAX_REPLY} are in {proc.stdout_path}",
                status_code=proc.status_code or 1,
                stderr=stderr)
        raw = proc.stdout(limit=MAX_REPLY)
        try:
            reply = jsondoc.loads(raw, max_bytes=MAX_REPLY) if raw.strip() else None
        except jsondoc.DocumentError as exc:
            reply = exc
        if not isinstance(reply, dict):
            why = ("printed nothing" if reply is None else
                   f"printed invalid JSON ({reply})" if isinstance(reply, ValueError) else
                   "printed JSON that is not an object")
            return HookResult.failure(
                f"hook {self.path} {why}; exit status {proc.status_code}",
                status_code=proc.status_code or 1, stdout=raw if reply is not None else "",
                stderr=stderr)
        outputs = {k: v for k, v in reply.items()
                   if k not in ("deploy_stdout", "deploy_stderr", "deploy_status_code")}
        status = reply.get("deploy_status_code", 0)
        if not isinstance(status, int) or isinstance(status, bool):
            try:
                status = int(status)
            except (TypeError, ValueError):
                status = 1
        hook_stderr = reply.get("deploy_stderr") or ""
        if not isinstance(hook_stderr, str):
            hook_stderr = json.dumps(hook_stderr)
        if proc.status_code != 0:
            # The exit code is the truth (the old agent believed stdout).
            return HookResult.failure(
                f"hook {self.path} exited with status {proc.status_code}",
                status_code=proc.status_code, stdout=_text(reply.get("deploy_stdout")),
                stderr=hook_stderr or stderr)
        # Heat gets the reply as the hook wrote it; the parsed fields serve the journal.
        return HookResult.passthrough(reply, status, _text(reply.get("deploy_stdout")),
                                      hook_stderr, outputs)


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
