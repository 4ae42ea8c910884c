"""guestagent against real Heat: every lab transport, and a failing script (issue 3, 1 and 2).

The agent is told only where its boot metadata is (heat_local); the
``os-collect-config`` key in it names the heat or cfn source and its
credentials, which the agent switches on by itself. Each scenario ends with
the stack's status and outputs read through the Heat API.
"""

import stat
import time

import pytest

from tests.e2e.agentguest import AgentGuest, Timings, script_outputs, stack_left, wait_done
from tests.e2e.heatapi import HeatClient, StackFactory

# metadata transport -> the source the agent must switch on for it
SOURCES = {"POLL_SERVER_HEAT": "heat", "POLL_SERVER_CFN": "cfn"}
SIGNALS = ("CFN_SIGNAL", "HEAT_SIGNAL", "NO_SIGNAL")


def secrets_of(occ: dict) -> list[str]:
    """The passwords and secret keys in an os_collect_config."""
    return [value for block in occ.values() if isinstance(block, dict)
            for key, value in block.items() if key in ("password", "secret_access_key")]


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("transport", list(SOURCES))
def test_agent_deploys_through_transport(transport: str, signal: str, heat: HeatClient,
                                         stacks: StackFactory, guest: AgentGuest,
                                         timings: Timings) -> None:
    message = f"{transport} and {signal}"
    started = time.monotonic()
    stack = stacks.create(software_config_transport=transport, signal_transport=signal,
                          message=message)
    occ = stack.os_collect_config
    assert SOURCES[transport] in occ["collectors"]
    guest.boot(occ)

    if signal == "NO_SIGNAL":
        # Heat does not wait for the guest: the stack completes on its own, without outputs
        outputs = heat.wait_for_status(stack, "CREATE_COMPLETE")
        timings.record(f"create {transport} + {signal} (Heat does not wait)", started)
        assert outputs["result"] is None
        entry = wait_done(guest, "CREATE")
    else:
        guest.run_until("the stack's create to end", stack_left(heat, stack, "CREATE_IN_PROGRESS"))
        outputs = heat.wait_for_status(stack, "CREATE_COMPLETE", timeout=10)
        timings.record(f"create {transport} + {signal}", started)
        expected = script_outputs(message)
        assert {key: outputs[key] for key in expected} == expected
        entry = guest.entry("CREATE")

    # the agent ran the deployment once, and told Heat the way the deployment asked
    assert entry is not None and entry.attempts == 1 and entry.status_code == 0
    assert entry.transport == signal
    assert entry.state == "signalled"
    assert guest.response(entry)["result"] == f"done: {message}"
    # it learnt the metadata through the source the transport names, switched on at run time
    fetched = guest.source_document(SOURCES[transport])
    assert fetched is not None and [d["id"] for d in fetched["deployments"]] == [entry.id]
    # the credentials it was given never reach its log, and the files that hold them are private
    for secret in secrets_of(occ):
        assert all(secret not in run.stderr + run.stdout for run in guest.runs)
    holding = [path for path in guest.state_dir.rglob("*")
               if path.is_file() and any(s.encode() in path.read_bytes() for s in secrets_of(occ))]
    assert holding, "the agent keeps its source's credentials somewhere"
    for path in holding:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


def test_agent_failing_script_fails_the_stack(heat: HeatClient, stacks: StackFactory,
                                              guest: AgentGuest, timings: Timings) -> None:
    started = time.monotonic()
    stack = stacks.create(exit_code="3", message="bad")
    guest.boot(stack.os_collect_config)
    guest.run_until("the stack's create to end", stack_left(heat, stack, "CREATE_IN_PROGRESS"))
    body = heat.show(stack)
    timings.record("create with a failing script (to CREATE_FAILED)", started)
    assert body["stack_status"] == "CREATE_FAILED"
    assert "status code: 3" in body["stack_status_reason"]
    entry = guest.entry("CREATE")
    assert entry is not None and entry.status_code == 3 and entry.state == "signalled"
    # the pass that ran it failed (exit 1); a later one does not run it again
    assert [run.returncode for run in guest.runs].count(1) == 1
    assert guest.once().returncode == 0 and guest.entry("CREATE").attempts == 1
    outputs = {out["output_key"]: out.get("output_value") for out in body["outputs"]}
    assert outputs["deploy_status_code"] == 3
    assert outputs["deploy_stdout"] == "message: bad\n"
