"""Fixtures for the VIP tests: settings to start from, and netns hosts with keepalived.

Tests that need root, network namespaces or keepalived skip on a developer's machine without
them, and FAIL under CI=true: there, a missing prerequisite is a broken install
(scripts/install/keepalived.sh), not a reason to report green.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakube.testing.netns import Network, unavailable_reason
from hakube.vip import VipSettings
from tests.conftest import require


@pytest.fixture(scope="session")
def netns_available() -> None:
    require(unavailable_reason())


@pytest.fixture(scope="session")
def keepalived_available() -> None:
    if shutil.which("keepalived") is None:
        require("keepalived is not installed (scripts/install/keepalived.sh)")


@pytest.fixture
def net(netns_available: None, tmp_path: Path) -> Iterator[Network]:
    """A fresh test network; its logs are copied to tmp_path before it is torn down."""
    with Network() as network:
        try:
            yield network
        finally:
            for log in network.workdir.glob("*.log"):
                shutil.copy(log, tmp_path / log.name)


@pytest.fixture
def settings() -> VipSettings:
    """Valid settings for the first of three masters on 192.0.2.0/24."""
    return VipSettings(
        vip="192.0.2.100",
        interface="eth0",
        interface_address="192.0.2.11/24",
        peers=("192.0.2.12", "192.0.2.13"),
        readyz_url="http://127.0.0.1:9100/readyz",
    )
