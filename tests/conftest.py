"""Shared fixtures: the fake cloud on loopback, a private Docker engine, a private podman."""

import pytest

from tests.fakecloud import FakeCloud


@pytest.fixture
def fakecloud():
    """A started FakeCloud (Keystone, Heat, heat-api-cfn, Swift temp URLs, Zaqar), stopped afterwards."""
    cloud = FakeCloud().start()
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory):
    """A private Docker engine (own netns and data root) with a local busybox image."""
    from tests.support.dockerd import Dockerd, missing

    why = missing()
    if why:
        pytest.skip(why)
    engine = Dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        engine.start()
        engine.import_busybox()
    except Exception:
        engine.stop()
        raise
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    """A private podman store (own storage and run roots) with a local busybox image."""
    from tests.support.podman import Podman, missing

    why = missing()
    if why:
        pytest.skip(why)
    engine = Podman(tmp_path_factory.mktemp("podman"))
    try:
        engine.import_busybox()
    except Exception:
        engine.stop()
        raise
    yield engine
    engine.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under GUESTAGENT_REQUIRE_ALL=1 (CI), a test skipped for a missing tool fails instead:
    CI installs every real program the tests use, so a skip there would hide a gap."""
    import os

    outcome = yield
    report = outcome.get_result()
    if os.environ.get("GUESTAGENT_REQUIRE_ALL") == "1" and report.skipped \
            and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped, but GUESTAGENT_REQUIRE_ALL=1 forbids skips: {reason}"
