"""Fixtures of the VM boot test: the e2e lab, Heat, the built image, the step timings.

test_vm_boot.py is marked ``e2e`` and ``slow`` and runs only with GUESTAGENT_E2E=1
(as tests/e2e); test_vm_parts.py (the relay, the drive, the log check) is fast. A lab that is already running is used as it is (its setup script is
not run again: another session may own it); one that is not is set up and started, and
stopped at the end unless HEATLAB_KEEP=1. GUESTAGENT_VM_IMAGE=DIR uses an image built
earlier by ``scripts/build-vm-image.sh DIR`` instead of building one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import labctl
from tests.e2e.heatapi import HeatClient, StackFactory, keystone_login
from tests.support import debootstrap
from tests.vm import image as vm_image

HERE = Path(__file__).resolve().parent
FIGURES = pytest.StashKey[dict]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the boot test ``e2e`` and ``slow``; skip it unless GUESTAGENT_E2E=1."""
    skip = pytest.mark.skip(reason="VM boot test (real Heat lab + qemu): set GUESTAGENT_E2E=1")
    for item in items:
        if Path(item.path).resolve() == HERE / "test_vm_boot.py":
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
            if os.environ.get("GUESTAGENT_E2E") != "1":
                item.add_marker(skip)


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> dict:
    """Seconds per step (build, boot to READY, create to COMPLETE, ...), printed at the end."""
    found = request.config.stash[FIGURES] = {}
    return found


@pytest.fixture(scope="session")
def lab() -> Iterator[labctl.Lab]:
    """The lab: re-used untouched when running, else set up and started for this session."""
    the_lab = labctl.current()
    started = False
    if not the_lab.running():
        try:
            started = labctl.ensure_running(the_lab)
        except labctl.LabError as error:
            pytest.fail(f"e2e lab unavailable: {error}", pytrace=False)
    yield the_lab
    if started and os.environ.get("HEATLAB_KEEP") != "1":
        labctl.stop(the_lab)


@pytest.fixture(scope="session")
def heat(lab: labctl.Lab) -> HeatClient:
    """Heat's API as the lab's demo user."""
    env = lab.env
    login = keystone_login(lab.keystone_url, env["DEMO_PASSWORD"], user_name=env["DEMO_USER"],
                           project_name=env["DEMO_PROJECT"])
    return HeatClient(login, env["REGION"])


@pytest.fixture
def stacks(heat: HeatClient, request: pytest.FixtureRequest) -> Iterator[StackFactory]:
    """Stacks from tests/vm/templates, deleted at the test's end."""
    factory = StackFactory(heat, HERE / "templates", "vm-" + request.node.name)
    yield factory
    factory.delete_all()


@pytest.fixture(scope="session")
def built_image(tmp_path_factory: pytest.TempPathFactory, figures: dict) -> vm_image.Image:
    """The bootable image: built now (timed), or the one GUESTAGENT_VM_IMAGE names."""
    given = os.environ.get("GUESTAGENT_VM_IMAGE")
    if given:
        found = vm_image.Image(Path(given))
        if not found.exists():
            pytest.fail(f"GUESTAGENT_VM_IMAGE={given}: no rootfs.img, vmlinuz and initrd.img")
        return found
    why = debootstrap.missing()
    if why:
        pytest.fail(f"cannot build the VM image here: {why}", pytrace=False)
    started = time.monotonic()
    built = vm_image.build(tmp_path_factory.mktemp("vm-image"))
    figures["image build (debootstrap cached or not, element, mkfs)"] = time.monotonic() - started
    for step, took in built.times.items():
        figures[f"  build step: {step}"] = took
    return built


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the timed steps of the VM boot test, if it ran."""
    found = config.stash.get(FIGURES, None)
    if found:
        terminalreporter.section("VM boot: seconds per step")
        for step, took in found.items():
            terminalreporter.write_line(f"{took:7.1f}  {step}" if isinstance(took, float)
                                        else f"{'':7}  {step}: {took}")
