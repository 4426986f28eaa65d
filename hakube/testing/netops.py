"""Clients in a netns host for the day-2 scenarios: a writer that records every acknowledged
write in a file (so a test can prove none is lost), a lister, and the ``hakube`` CLI, all run
inside the client's namespace against the VIP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hakube.testing import netmasters
from hakube.testing.netns import Host

_WRITER = """
import os, sys
import grpc
from hakube.testing.api import Api
api = Api([sys.argv[1]])
out, stop, prefix = open(sys.argv[2], "a"), sys.argv[3], sys.argv[4]
i = 0
while not os.path.exists(stop):
    name = f"{prefix}-{i}"
    try:
        api.create_configmap(name)
        out.write(name + "\\n")
        out.flush()
    except grpc.RpcError:
        pass
    i += 1
"""

_LIST = """
import sys
from hakube.testing.api import Api
print("\\n".join(sorted(Api([sys.argv[1]]).names())))
"""


class VipWriter:
    """A process in ``client`` creating ConfigMaps through ``address`` back to back; the names
    of acknowledged ones are appended (flushed) to a file as each answer arrives."""

    def __init__(self, client: Host, address: str, prefix: str) -> None:
        work = client.network.workdir
        self.acked_file = work / f"acked-{prefix}.txt"
        self.stop_file = work / f"stop-{prefix}"
        argv = [
            sys.executable,
            "-c",
            _WRITER,
            f"{address}:{netmasters.API_PORT}",
            str(self.acked_file),
            str(self.stop_file),
            prefix,
        ]
        self.proc = client.spawn(argv, log=work / f"writer-{prefix}.log", env=netmasters.env())

    def acked(self) -> list[str]:
        if not self.acked_file.exists():
            return []
        return [n for n in self.acked_file.read_text().splitlines() if n]

    def finish(self, timeout: float = 60.0) -> list[str]:
        """Stop after the write in progress; returns every acknowledged name."""
        Path(self.stop_file).touch()
        self.proc.wait(timeout)
        return self.acked()


def names_via(client: Host, address: str, timeout: float = 60.0) -> set[str]:
    """Every ConfigMap name in "default", listed from ``client`` through ``address``."""
    argv = [sys.executable, "-c", _LIST, f"{address}:{netmasters.API_PORT}"]
    res = client.run(argv, timeout=timeout, env=netmasters.env())
    return set(res.stdout.split())


def hakube_in(host: Host, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the ``hakube`` CLI inside ``host``."""
    return host.run(
        [sys.executable, "-m", "hakube", *args], timeout=timeout, check=False, env=netmasters.env()
    )
