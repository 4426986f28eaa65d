"""The ``hakube`` CLI run inside a netns host, for the day-2 scenarios (``members add``,
``members list`` ... through the VIP, from the client's namespace). The writer those scenarios
use is :class:`hakube.testing.netprobe.Probe`."""

from __future__ import annotations

import subprocess
import sys

from hakube.testing import netmasters
from hakube.testing.netns import Host


def hakube_in(host: Host, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the ``hakube`` CLI inside ``host``."""
    return host.run(
        [sys.executable, "-m", "hakube", *args], timeout=timeout, check=False, env=netmasters.env()
    )
