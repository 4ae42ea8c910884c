"""The e2e tier: tests against a real Keystone + Heat (tests/e2e/lab).

Every test under tests/e2e is marked ``e2e``. Unless GUESTAGENT_E2E=1 they
are skipped, so a plain ``pytest`` stays fast; with GUESTAGENT_E2E=1 the
session sets the lab up and starts it (or re-uses a running one), and any
failure to do so fails the tests rather than skipping them. A lab this
session started is stopped at its end unless HEATLAB_KEEP=1.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import labctl, swiftzaqar
from tests.e2e.agentguest import AgentGuest, Timings
from tests.e2e.heatapi import HeatClient, StackFactory, keystone_login

ENABLE = "GUESTAGENT_E2E"
HERE = Path(__file__).resolve().parent
TIMINGS = pytest.StashKey["Timings"]()


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marker added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests under tests/e2e ``e2e``; skip them unless GUESTAGENT_E2E=1."""
    skip = pytest.mark.skip(reason=f"e2e tier (real Heat + Keystone lab): set {ENABLE}=1 to run")
    enabled = os.environ.get(ENABLE) == "1"
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            if not enabled:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def lab() -> Iterator[labctl.Lab]:
    """The running lab: set up and started for this session, or re-used."""
    the_lab = labctl.current()
    try:
        started = labctl.ensure_running(the_lab)
    except labctl.LabError as error:
        pytest.fail(f"e2e lab unavailable ({ENABLE}=1): {error}", pytrace=False)
    yield the_lab
    if started and os.environ.get("HEATLAB_KEEP") != "1":
        labctl.stop(the_lab)


@pytest.fixture(scope="session")
def swift_zaqar(lab: labctl.Lab) -> Iterator[swiftzaqar.SwiftZaqar]:
    """Real Swift and Zaqar beside the lab (registered in its Keystone): set up and started
    for this session, or re-used. A failure to start fails the tests, never skips them."""
    services = swiftzaqar.current(lab)
    try:
        started = swiftzaqar.ensure_running(services)
    except labctl.LabError as error:
        pytest.fail(f"Swift/Zaqar unavailable ({ENABLE}=1): {error}", pytrace=False)
    yield services
    if started and os.environ.get("HEATLAB_KEEP") != "1":
        services.stop()


@pytest.fixture(scope="session")
def heat(lab: labctl.Lab) -> HeatClient:
    """Heat's API as the lab's demo user (member, heat_stack_owner)."""
    env = lab.env
    login = keystone_login(lab.keystone_url, env["DEMO_PASSWORD"], user_name=env["DEMO_USER"],
                           project_name=env["DEMO_PROJECT"])
    return HeatClient(login, env["REGION"])


@pytest.fixture
def stacks(heat: HeatClient, request: pytest.FixtureRequest) -> Iterator[StackFactory]:
    """Makes stacks named after the test; deletes those left at its end."""
    factory = StackFactory(heat, HERE / "templates", request.node.name)
    yield factory
    factory.delete_all()


@pytest.fixture(scope="session")
def timings(lab: labctl.Lab, request: pytest.FixtureRequest) -> Timings:
    """Stack operation times of the agent scenarios (also kept in the lab's scenario-times.log)."""
    found = request.config.stash[TIMINGS] = Timings(lab.logs / "scenario-times.log")
    return found


@pytest.fixture
def guest(tmp_path: Path) -> AgentGuest:
    """A fresh guest for the real agent: heat_local file and state directory under tmp_path."""
    return AgentGuest(tmp_path / "guest")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the scenario times measured this session, if any scenario ran."""
    found = config.stash.get(TIMINGS, None)
    figures = found.figures if found else []
    if figures:
        terminalreporter.section("real Heat: seconds from stack operation to its end")
        for scenario, took in figures:
            terminalreporter.write_line(f"{took:7.1f}  {scenario}")
