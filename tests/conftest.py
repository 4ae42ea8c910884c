"""Shared fixtures: the fake cloud on loopback."""

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
