"""Run the real agent as a separate process, and build deployments the way Heat does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.fakecloud import FakeCloud

REPO = Path(__file__).resolve().parents[2]


def agent_argv(state_dir: Path, *args: str, config: Path | str = "/dev/null") -> list[str]:
    """argv for `guestagent` with an isolated state dir and marker dir (no config file unless
    `config` names one)."""
    return [sys.executable, "-m", "guestagent", "--config", str(config),
            "--state-dir", str(state_dir), "--deployed-dir", str(state_dir / "no-markers"),
            *args]


def run_agent(state_dir: Path, *args: str, timeout: float = 120,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """`guestagent --once ...` to completion; stdout and stderr captured as text."""
    return subprocess.run(agent_argv(state_dir, "--once", *args), capture_output=True, text=True,
                          timeout=timeout, env=_env(env), cwd=REPO)


def start_agent(state_dir: Path, *args: str, env: dict | None = None,
                log: Path | None = None, config: Path | str = "/dev/null") -> subprocess.Popen:
    """The agent as a background process (daemon, or --once when passed)."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen(agent_argv(state_dir, *args, config=config), stdout=out, stderr=subprocess.STDOUT,
                            env=_env(env), cwd=REPO)


def _env(extra: dict | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def signal_inputs(cloud: FakeCloud, transport: str, name: str) -> list[dict]:
    """Heat's well-known inputs for `transport`, pointing at the fake cloud."""
    inputs = [
        {"name": "deploy_server_id", "value": "server-1"},
        {"name": "deploy_action", "value": "CREATE"},
        {"name": "deploy_stack_id", "value": "stack/00000000-0000-0000-0000-000000000001"},
        {"name": "deploy_resource_name", "value": name},
        {"name": "deploy_signal_transport", "value": transport},
    ]
    if transport == "CFN_SIGNAL":
        inputs += [{"name": "deploy_signal_id", "value": cloud.cfn_signal_url(name)},
                   {"name": "deploy_signal_verb", "value": "POST"}]
    elif transport == "TEMP_URL_SIGNAL":
        inputs += [{"name": "deploy_signal_id", "value": cloud.temp_url(name)},
                   {"name": "deploy_signal_verb", "value": "PUT"}]
    elif transport in ("HEAT_SIGNAL", "ZAQAR_SIGNAL"):
        user, password = f"user-{name}", f"pw-{uuid.uuid4().hex}"
        cloud.add_user(user, password)
        inputs += [{"name": "deploy_auth_url", "value": cloud.auth_url},
                   {"name": "deploy_user_id", "value": user},
                   {"name": "deploy_username", "value": user},
                   {"name": "deploy_password", "value": password},
                   {"name": "deploy_project_id", "value": cloud.project_id},
                   {"name": "deploy_region_name", "value": "RegionOne"}]
        if transport == "ZAQAR_SIGNAL":
            inputs.append({"name": "deploy_queue_id", "value": f"queue-{name}"})
    return inputs


def deployment(cloud: FakeCloud, name: str, config: str, *, transport: str = "CFN_SIGNAL",
               group: str = "script", inputs: list | None = None, outputs: list | None = None,
               dep_id: str | None = None, options=None) -> dict:
    """One deployment as Heat puts it in the metadata."""
    return {
        "id": dep_id or str(uuid.uuid4()), "name": name, "group": group,
        "creation_time": "2026-11-21T12:00:00Z", "config": config, "options": options,
        "inputs": list(inputs or []) + signal_inputs(cloud, transport, name),
        "outputs": [{"name": o, "type": "String", "error_output": False} for o in outputs or []],
    }


def signals_for(cloud: FakeCloud, name: str) -> list:
    """Bodies of the signals the cloud received for resource `name`, any transport."""
    found = []
    for _transport, target, body in list(cloud.signals):
        if isinstance(body, (bytes, str)):
            body = json.loads(body)
        if target in (name, f"queue-{name}") or target.endswith(f"/{name}"):
            found.append(body)
    return found


def make_agent(cloud: FakeCloud, tmp_path: Path, clock, *, cli: dict | None = None,
               **yaml_settings):
    """The agent in this process on a simulated `clock` (its waits and in-pass retry sleeps
    advance it), reading the fake cloud's metadata through the request source.
    `yaml_settings` go to a config file (SIGHUP re-reads it), `cli` as command-line settings."""
    from guestagent import config
    from guestagent.agent import Agent

    conf = tmp_path / "guestagent.yaml"
    conf.write_text("".join(f"{k}: {v}\n" for k, v in yaml_settings.items()))
    loaded = config.load(str(conf), {
        "collectors": ["request"], "request": {"metadata_url": cloud.metadata_url},
        "state_dir": str(tmp_path / "state"), "deployed_dir": str(tmp_path / "no-markers"),
        **(cli or {})}, old_config=None)
    agent = Agent(loaded, clock=clock, sleep=clock.sleep)
    agent.loaded_path = str(conf)
    return agent
