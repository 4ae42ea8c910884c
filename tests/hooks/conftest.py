"""Fixtures shared by the hook tests: a hook context in a temp dir and a deployment builder."""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from guestagent.deployments import Deployment, parse_one
from guestagent.hooks.base import HookContext

_ids = itertools.count(1)


@pytest.fixture
def ctx(tmp_path: Path) -> HookContext:
    return HookContext(work_dir=tmp_path / "work", outputs_dir=tmp_path / "outputs",
                       capture_dir=tmp_path / "capture", timeout=300)


def deployment_dict(group: str, config, *, name: str = "dep", inputs: dict | None = None,
                    outputs: tuple[str, ...] = (), options: dict | None = None,
                    action: str = "CREATE", dep_id: str | None = None) -> dict:
    """A deployment as Heat puts it in the metadata (well-known inputs appended)."""
    items = [{"name": k, "type": "String", "value": v} for k, v in (inputs or {}).items()]
    items += [{"name": "deploy_action", "value": action},
              {"name": "deploy_server_id", "value": "server-1"},
              {"name": "deploy_stack_id", "value": "stack/1234"},
              {"name": "deploy_resource_name", "value": name}]
    return {"id": dep_id or f"id-{next(_ids):04d}-{os.getpid()}", "name": name, "group": group,
            "config": config, "options": options, "inputs": items,
            "outputs": [{"name": o} for o in outputs]}


def make(group: str, config, **kw) -> Deployment:
    dep = parse_one(deployment_dict(group, config, **kw))
    assert dep.problem is None, dep.problem
    return dep


def run_standalone(module: str, deployment: dict, env: dict, tmp_path: Path) -> dict:
    """`python -m guestagent.hooks.<module>` with the deployment on stdin; its JSON reply.

    Its working and outputs directories are `tmp_path`/w and /o (HEAT_<TOOL>_WORKING/_OUTPUTS).
    """
    var = "HEAT_" + deployment["group"].upper().replace("-", "_")
    dirs = {f"{var}_WORKING": str(tmp_path / "w"), f"{var}_OUTPUTS": str(tmp_path / "o")}
    proc = subprocess.run([sys.executable, "-m", f"guestagent.hooks.{module}"],
                          input=json.dumps(deployment).encode(), capture_output=True,
                          env={**os.environ, **dirs, **env}, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


FAKE_TOOL = Path(__file__).with_name("fake_tool.py")


class FakeTool:
    """tests/hooks/fake_tool.py as a hook's tool: what each start should do, and what it saw."""

    def __init__(self, root: Path):
        self.path = str(FAKE_TOOL)
        self.record = root / "fake-calls"

    def env(self, reply=None) -> dict:
        """Environment entries that make the fake record its starts and answer with `reply`."""
        return {"FAKE_TOOL_RECORD": str(self.record), "FAKE_TOOL_REPLY": json.dumps(reply or {})}

    def calls(self) -> list[dict]:
        """Every start so far, in order: {"argv", "env", "cwd"}."""
        if not self.record.exists():
            return []
        found = sorted(self.record.glob("call-*.json"), key=lambda p: int(p.stem.split("-")[1]))
        return [json.loads(p.read_text()) for p in found]

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]


@pytest.fixture
def fake_tool(tmp_path: Path) -> FakeTool:
    return FakeTool(tmp_path)


def run_hook(module: str, deployment: dict, env: dict) -> dict:
    """`python -m guestagent.hooks.<module>` fed `deployment`, with exactly `env` added to ours
    (the caller names the working/outputs directories, as heat-agents' tests do)."""
    proc = subprocess.run([sys.executable, "-m", f"guestagent.hooks.{module}"],
                          input=json.dumps(deployment).encode(), capture_output=True,
                          env={**os.environ, **env}, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


@pytest.fixture
def dctx(ctx, dockerd):
    """A hook context whose children talk to the private Docker engine."""
    ctx.env = dockerd.env()
    return ctx


def env_of(container: dict) -> dict:
    """A container's environment (from `docker inspect`) as a dict."""
    return dict(item.split("=", 1) for item in container["Config"]["Env"])
