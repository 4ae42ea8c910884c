"""guestagent against real Heat: a stack update and a stack delete, for every config transport
(issue 3, 3 and 4; issue 13, 1)."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.agentguest import (
    PAIRS,
    AgentGuest,
    Timings,
    script_outputs,
    stack_left,
    wait_done,
)
from tests.e2e.heatapi import HeatClient, StackFactory
from tests.e2e.swiftzaqar import SwiftZaqar

IDS = [transport for transport, _ in PAIRS]


@pytest.mark.parametrize(("transport", "signal"), PAIRS, ids=IDS)
def test_agent_reruns_the_deployment_on_update(transport: str, signal: str, heat: HeatClient,
                                               swift_zaqar: SwiftZaqar, stacks: StackFactory,
                                               guest: AgentGuest, timings: Timings) -> None:
    started = time.monotonic()
    stack = stacks.create(software_config_transport=transport, signal_transport=signal,
                          message="first")
    guest.boot(stack.os_collect_config)
    guest.run_until("the stack's create to end", stack_left(heat, stack, "CREATE_IN_PROGRESS"))
    assert heat.wait_for_status(stack, "CREATE_COMPLETE", timeout=10)["result"] == "done: first"
    timings.record(f"update scenario ({transport} + {signal}): create", started)
    created = guest.entry("CREATE")

    started = time.monotonic()
    heat.update_stack(stack, {"message": "second"})
    updated = wait_done(guest, "UPDATE")
    outputs = heat.wait_for_status(stack, "UPDATE_COMPLETE")
    timings.record(f"update scenario ({transport} + {signal}): update (to UPDATE_COMPLETE)",
                   started)
    expected = script_outputs("second")
    assert {key: outputs[key] for key in expected} == expected

    # Heat re-ran the deployment under a new id with the new input; the agent ran it once
    assert updated.id != created.id
    assert updated.attempts == 1 and updated.status_code == 0
    assert guest.response(updated)["deploy_stdout"] == "message: second\n"
    # ... and did not run the old one again: it left the metadata, after one run
    journal = {entry.id: entry for entry in guest.journal()}
    assert set(journal) == {created.id, updated.id}
    assert journal[created.id].state == "gone" and journal[created.id].attempts == 1
    assert journal[created.id].finished_at == created.finished_at


@pytest.mark.parametrize(("transport", "signal"), PAIRS, ids=IDS)
def test_agent_runs_the_delete_action(transport: str, signal: str, heat: HeatClient,
                                      swift_zaqar: SwiftZaqar, stacks: StackFactory,
                                      guest: AgentGuest, timings: Timings) -> None:
    started = time.monotonic()
    stack = stacks.create(software_config_transport=transport, signal_transport=signal,
                          actions="CREATE,DELETE", message="delete me")
    guest.boot(stack.os_collect_config)
    guest.run_until("the stack's create to end", stack_left(heat, stack, "CREATE_IN_PROGRESS"))
    heat.wait_for_status(stack, "CREATE_COMPLETE", timeout=10)
    timings.record(f"delete scenario ({transport} + {signal}): create", started)

    # Heat waits for the guest to run the DELETE action: poll while the deletion runs
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        deletion = pool.submit(stacks.delete, stack)
        deleted = wait_done(guest, "DELETE")
        deletion.result(timeout=120)  # raises if the stack went DELETE_FAILED
    timings.record(f"delete scenario ({transport} + {signal}): delete (stack gone)", started)

    assert deleted.status_code == 0 and deleted.attempts == 1
    assert deleted.transport == signal
    assert guest.response(deleted)["deploy_stdout"] == "message: delete me\n"
    create = guest.entry("CREATE")
    assert create is not None and create.attempts == 1 and create.id != deleted.id
