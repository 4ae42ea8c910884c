"""guestagent against real Heat: a failing script fails the stack, for every config transport
(issue 3, 2; issue 13, 1). The transport matrix itself is test_agent_matrix.py."""

import time

import pytest

from tests.e2e.agentguest import PAIRS, AgentGuest, Timings, stack_left
from tests.e2e.heatapi import HeatClient, StackFactory
from tests.e2e.swiftzaqar import SwiftZaqar


@pytest.mark.parametrize(("transport", "signal"), PAIRS, ids=[t for t, _ in PAIRS])
def test_agent_failing_script_fails_the_stack(transport: str, signal: str, heat: HeatClient,
                                              swift_zaqar: SwiftZaqar, stacks: StackFactory,
                                              guest: AgentGuest, timings: Timings) -> None:
    started = time.monotonic()
    stack = stacks.create(software_config_transport=transport, signal_transport=signal,
                          exit_code="3", message="bad")
    guest.boot(stack.os_collect_config)
    guest.run_until("the stack's create to end", stack_left(heat, stack, "CREATE_IN_PROGRESS"))
    body = heat.show(stack)
    timings.record(f"failing script {transport} + {signal} (to CREATE_FAILED)", started)
    assert body["stack_status"] == "CREATE_FAILED"
    assert "status code: 3" in body["stack_status_reason"]
    entry = guest.entry("CREATE")
    assert entry is not None and entry.status_code == 3 and entry.state == "signalled"
    # The pass that ran it failed (exit 1; so does a pass whose source could not be read yet,
    # as a temp URL before Heat wrote its object); a later pass does not run it again.
    codes = [run.returncode for run in guest.runs]
    assert 1 in codes and set(codes) <= {0, 1}, codes
    assert guest.once().returncode == 0 and guest.entry("CREATE").attempts == 1
    outputs = {out["output_key"]: out.get("output_value") for out in body["outputs"]}
    assert outputs["deploy_status_code"] == 3
    assert outputs["deploy_stdout"] == "message: bad\n"
