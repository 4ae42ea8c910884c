"""Smoke tests of the lab itself: a guest played by hand against real Heat.

No guestagent code runs here. These prove that the lab serves what the
agent's scenarios rely on: os_collect_config for each transport, the
deployments in the server's metadata through the Heat API and through
heat-api-cfn, and signals that complete (or fail) the deployment.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e import guest
from tests.e2e.heatapi import HeatClient, Stack, StackFactory, poll


def script_result(message: str, status: int = 0) -> dict:
    """What the script hook would send for the template's script."""
    return {"result": f"done: {message}", "deploy_stdout": f"message: {message}\n",
            "deploy_stderr": "to stderr\n", "deploy_status_code": status}


def wait_for_deployment(fetch: Callable[[], dict], action: str, seen: tuple[str, ...] = (),
                        timeout: float = 60) -> dict:
    """Poll the metadata until a deployment not in ``seen`` runs for ``action``."""
    def probe() -> dict | None:
        for deployment in fetch().get("deployments", []):
            if deployment["id"] not in seen and guest.inputs(deployment)["deploy_action"] == action:
                return deployment
        return None

    return poll(f"{action} deployment in the metadata", probe, timeout)


def test_poll_server_heat_with_heat_signal(heat: HeatClient, stacks: StackFactory) -> None:
    stack = stacks.create(software_config_transport="POLL_SERVER_HEAT",
                          signal_transport="HEAT_SIGNAL", message="one")
    occ = stack.os_collect_config
    assert "heat" in occ["collectors"]
    creds = occ["heat"]
    assert creds["stack_id"] == stack.ref
    assert creds["resource_name"] == "server"
    assert {"auth_url", "user_id", "password", "project_id"} <= set(creds)

    fetch = lambda: guest.heat_metadata(creds)  # noqa: E731
    created = wait_for_deployment(fetch, "CREATE")
    given = guest.inputs(created)
    assert created["group"] == "script"
    assert given["message"] == "one"
    assert given["deploy_signal_transport"] == "HEAT_SIGNAL"
    assert given["deploy_stack_id"] == stack.ref
    assert given["deploy_resource_name"] == "deployment"
    # the owner's view of the same metadata holds the same deployment
    owner_view = heat.resource_metadata(stack, "server")
    assert [d["id"] for d in owner_view["deployments"]] == [created["id"]]
    assert heat.show(stack)["stack_status"] == "CREATE_IN_PROGRESS"

    reply = guest.heat_signal(created, script_result("one"))
    assert reply.status_code == 200, reply.text
    outputs = heat.wait_for_status(stack, "CREATE_COMPLETE")
    assert outputs["result"] == "done: one"
    assert outputs["deploy_stdout"] == "message: one\n"
    assert outputs["deploy_stderr"] == "to stderr\n"
    assert outputs["deploy_status_code"] == 0

    # an update re-runs the deployment under a new id, for action UPDATE
    heat.update_stack(stack, {"message": "two"})
    updated = wait_for_deployment(fetch, "UPDATE", seen=(created["id"],))
    assert guest.inputs(updated)["message"] == "two"
    assert guest.heat_signal(updated, script_result("two")).status_code == 200
    assert heat.wait_for_status(stack, "UPDATE_COMPLETE")["result"] == "done: two"

    stacks.delete(stack)


def test_poll_server_cfn_with_cfn_signal(lab, heat: HeatClient, stacks: StackFactory) -> None:
    stack = stacks.create(software_config_transport="POLL_SERVER_CFN",
                          signal_transport="CFN_SIGNAL", message="cfn")
    occ = stack.os_collect_config
    assert "cfn" in occ["collectors"]
    creds = occ["cfn"]
    cfn_root = f"http://{lab.env['LAB_HOST']}:{lab.env['HEAT_CFN_PORT']}/v1/"
    assert creds["metadata_url"] == cfn_root
    assert creds["stack_name"] == stack.name
    assert creds["path"] == "server.Metadata"

    created = wait_for_deployment(lambda: guest.cfn_metadata(creds), "CREATE")
    given = guest.inputs(created)
    assert given["message"] == "cfn"
    assert given["deploy_signal_transport"] == "CFN_SIGNAL"
    assert given["deploy_signal_id"].startswith(cfn_root + "signal/")

    # heat-api-cfn checks the signature: a wrong secret is refused
    forged = dict(creds, secret_access_key="not-the-secret")
    with pytest.raises(requests.HTTPError) as refused:
        guest.cfn_metadata(forged)
    assert refused.value.response.status_code == 403

    reply = guest.cfn_signal(created, script_result("cfn"))
    assert reply.ok, reply.text
    outputs = heat.wait_for_status(stack, "CREATE_COMPLETE")
    assert outputs["result"] == "done: cfn"
    assert outputs["deploy_status_code"] == 0

    stacks.delete(stack)


def test_nonzero_status_fails_the_deployment(heat: HeatClient, stacks: StackFactory) -> None:
    stack = stacks.create(exit_code="3", message="bad")
    deployment = wait_for_deployment(lambda: guest.heat_metadata(stack.os_collect_config["heat"]),
                                     "CREATE")
    assert guest.inputs(deployment)["exit_code"] == "3"
    assert guest.heat_signal(deployment, script_result("bad", status=3)).status_code == 200
    heat.wait_for_status(stack, "CREATE_FAILED")
    assert "non-zero status code: 3" in heat.show(stack)["stack_status_reason"]


def test_parallel_stacks(heat: HeatClient, stacks: StackFactory) -> None:
    """Several deployments at once: SQLite and Keystone hold under concurrency."""
    def deploy(number: int) -> Stack:
        message = f"parallel {number}"
        stack = stacks.create(message=message)
        deployment = wait_for_deployment(
            lambda: guest.heat_metadata(stack.os_collect_config["heat"]), "CREATE")
        assert guest.heat_signal(deployment, script_result(message)).status_code == 200
        assert heat.wait_for_status(stack, "CREATE_COMPLETE")["result"] == f"done: {message}"
        return stack

    with ThreadPoolExecutor(3) as pool:
        created = list(pool.map(deploy, range(3)))
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(stacks.delete, created))
