"""Prerequisites of the Ansible deployment test: ansible-playbook, netns (root), keepalived.

Missing ones skip the test on a developer's machine and FAIL it under CI=true, where they are a
broken install (``pip install -e '.[dev]'``, scripts/install/keepalived.sh), not a reason to
report green.
"""

from __future__ import annotations

import shutil

import pytest

from hakube.testing.netns import unavailable_reason
from tests.ansible.tools import ansible_tool
from tests.conftest import require


@pytest.fixture(scope="session")
def deploy_prerequisites() -> None:
    if ansible_tool("ansible-playbook") is None:
        require("ansible-playbook is not installed (pip install -e '.[dev]')")
    if shutil.which("keepalived") is None:
        require("keepalived is not installed (scripts/install/keepalived.sh)")
    require(unavailable_reason())
