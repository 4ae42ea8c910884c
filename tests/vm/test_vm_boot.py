"""The image, booted: a qemu VM runs a real Heat stack's deployment, then survives reboots.

The image is built from the elements (tests/vm/image.py) and booted with qemu in a network
namespace of the test's own (tests/vm/netns.py); its only boot data is a config drive with
the server's os-collect-config (tests/vm/configdrive.py). Nothing else tells the guest
about the stack: systemd starts guestagent.service, whose config_drive source finds the
drive, switches the heat source on, runs the deployment and signals Heat.

Then, with the same VM, the stack is updated so that the script holds (sleeps) in its
first run, and the VM is rebooted while it runs: once cleanly (ctrl-alt-del: systemd
stops the agent, which stops its hook), once by the reset button (power loss). Each time
the stack completes, the script never runs twice at once (its start/end/killed lines,
with PIDs, on the second serial port) and Heat receives one signal per action.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.heatapi import HeatClient, Stack, StackFactory, poll
from tests.e2e.labctl import Lab
from tests.vm import configdrive, netns
from tests.vm.image import Image
from tests.vm.qemu import VM
from tests.vm.runlog import never_twice

# The whole test's time budget (seconds): every wait gets what is left of it, so CI's
# time is bounded whatever hangs. TCG boots take minutes on a loaded 2-core machine.
BUDGET = float(os.environ.get("GUESTAGENT_VM_BUDGET", "2400"))
HOLD = "3600"  # the held run is always interrupted long before this


def server_id(heat: HeatClient, stack: Stack) -> str:
    """The DeployedServer's id (what Nova's meta_data.json calls uuid)."""
    reply = heat.http.get(f"{heat.url}/stacks/{stack.ref}/resources/server", timeout=30)
    reply.raise_for_status()
    return reply.json()["resource"]["physical_resource_id"]


def deployment_user(heat: HeatClient, stack: Stack) -> str:
    """The Keystone user the deployment's HEAT_SIGNAL signals come from."""
    deployment = heat.resource_metadata(stack, "server")["deployments"][0]
    return {item["name"]: item.get("value") for item in deployment["inputs"]}["deploy_user_id"]


class Budget:
    """What is left of the test's time budget, for each wait in turn."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"the VM boot test ran past its budget of {BUDGET:.0f} s "
                        "(GUESTAGENT_VM_BUDGET)")
        return left


@pytest.fixture
def namespace(request: pytest.FixtureRequest):
    """A network namespace with the guest's gateway and the relay to the lab."""
    space = netns.Namespace(f"vmboot-{time.monotonic_ns() % 10**9}")
    try:
        relay = netns.Relay(space)
    except netns.NetnsError:
        space.close()
        raise
    yield space
    relay.close()
    space.close()


def test_booted_image_runs_a_stack_and_survives_reboots(
        lab: Lab, heat: HeatClient, stacks: StackFactory, built_image: Image,
        namespace: netns.Namespace, tmp_path: Path, figures: dict) -> None:
    budget = Budget(BUDGET)
    started = time.monotonic()
    stack = stacks.create("vm_server.yaml", software_config_transport="POLL_SERVER_HEAT",
                          signal_transport="HEAT_SIGNAL", message="booted")
    cfn_url = f"http://{lab.env['LAB_HOST']}:{lab.env['HEAT_CFN_PORT']}/v1/"
    drive = configdrive.build(tmp_path / "config-2.iso", server_id=server_id(heat, stack),
                              name="guestagent-vm", os_collect_config=stack.os_collect_config,
                              cfn_url=cfn_url)
    vm = VM(built_image, drive, namespace, tmp_path)
    vm.start()
    try:
        figures["accelerator"] = vm.accel
        if vm.kvm_failure:
            figures["why not KVM"] = vm.kvm_failure[:100]
        ready = vm.wait_console("Started guestagent", budget.left())
        figures["boot to agent READY (qemu start to systemd's Started line)"] = \
            ready - vm.started_at
        outputs = heat.wait_for_status(stack, "CREATE_COMPLETE", timeout=budget.left())
        figures["stack create to CREATE_COMPLETE (includes the boot)"] = time.monotonic() - started
        assert outputs["result"] == "done: booted"
        assert outputs["deploy_stdout"] == "message: booted\n"
        assert never_twice(vm.ttys1_lines()) == [
            ("boot", "", ""), ("start", "CREATE", "booted"), ("end", "CREATE", "booted")]
        signaller = deployment_user(heat, stack)
        assert lab.heat_requests(signaller) == 1

        # a clean reboot while the script runs: systemd stops the agent, the agent its hook
        _reboot_while_held(vm, heat, stack, "clean reboot", vm.ctrl_alt_del, figures, budget)
        events = never_twice(vm.ttys1_lines())
        assert events[3:] == [("start", "UPDATE", "clean reboot"),
                              ("killed", "UPDATE", "clean reboot"), ("boot", "", ""),
                              ("start", "UPDATE", "clean reboot"),
                              ("end", "UPDATE", "clean reboot")]
        _settle(lab, stack, budget)
        assert lab.heat_requests(signaller) == 2

        # the reset button: the run dies with the machine, the journal says "running"
        _reboot_while_held(vm, heat, stack, "power loss", vm.reset, figures, budget)
        events = never_twice(vm.ttys1_lines())
        assert events[8:] == [("start", "UPDATE", "power loss"), ("boot", "", ""),
                              ("start", "UPDATE", "power loss"), ("end", "UPDATE", "power loss")]
        _settle(lab, stack, budget)
        assert lab.heat_requests(signaller) == 3
    finally:
        vm.stop()
        kept = lab.logs / f"vm-boot-{time.strftime('%Y%m%dT%H%M%S')}"
        kept.mkdir(parents=True, exist_ok=True)
        for name in ("console.log", "ttyS1.log", "qemu-kvm.log", "qemu-tcg.log"):
            if (tmp_path / name).exists():
                shutil.copy(tmp_path / name, kept / name)
        print(f"VM logs kept in {kept}; the console ends:\n{vm.console_text()[-6000:]}")


def _reboot_while_held(vm: VM, heat: HeatClient, stack: Stack, message: str, reboot,
                       figures: dict, budget: Budget) -> None:
    """Update the stack to a held run of ``message``, reboot when it starts, wait for COMPLETE."""
    started = time.monotonic()
    heat.update_stack(stack, {"message": message, "hold": HOLD})
    vm.wait_ttys1(lambda lines: f"UPDATE {message}" in "".join(lines[-1:]) and
                  lines[-1].startswith("start"), f"the held run of {message!r}", budget.left())
    seen = len(vm.console_text())
    rebooted = time.monotonic()
    reboot()
    ready = vm.wait_console("Started guestagent", budget.left(), after=seen)
    figures[f"{message}: reboot to agent READY"] = ready - rebooted
    outputs = heat.wait_for_status(stack, "UPDATE_COMPLETE", timeout=budget.left())
    figures[f"{message}: reboot to UPDATE_COMPLETE"] = time.monotonic() - rebooted
    figures[f"{message}: update to UPDATE_COMPLETE"] = time.monotonic() - started
    assert outputs["result"] == f"done: {message}"


def _settle(lab: Lab, stack: Stack, budget: Budget) -> None:
    """Wait for three more metadata polls by the guest: any second signal would be sent by then."""
    server_user = stack.os_collect_config["heat"]["user_id"]
    before = lab.heat_requests(server_user)
    poll("three more metadata polls by the guest",
         lambda: True if lab.heat_requests(server_user) >= before + 3 else None,
         timeout=min(300, budget.left()))
