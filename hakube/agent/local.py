"""Node agents as local processes, for ``hakube up --nodes M``.

Each agent is its own ``hakube agent`` process (node ``node-1`` ... ``node-M``) with its root
dir and log under the cluster's data dir, its API on a free loopback port, and the runtime
``hakube up`` was given (simulated by default; containerd at the default CRI socket). With the
cluster's PKI, each node's certificate is issued from its CA before the agent starts
(hakube.testing.nodepki), so that the masters can reach the agents' API.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from hakube import procs
from hakube.cri.client import DEFAULT_ENDPOINT
from hakube.pki.layout import Pki
from hakube.testing.nodepki import provision_node


@dataclass
class LocalAgent:
    name: str
    log_path: str
    proc: subprocess.Popen[bytes]


class LocalAgents:
    def __init__(
        self,
        data_dir: str,
        servers: list[str],
        *,
        runtime: str = "simulated",
        cri_endpoint: str = DEFAULT_ENDPOINT,
        pki: Pki | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.pki = pki
        self.servers = servers
        self.runtime = runtime
        self.cri_endpoint = cri_endpoint
        self.agents: list[LocalAgent] = []

    def command(self, name: str, index: int = 1) -> list[str]:
        cmd = procs.hakube_argv(
            "agent",
            "--node-name",
            name,
            "--servers",
            ",".join(self.servers),
            "--root-dir",
            os.path.join(self.data_dir, name),
            "--listen",
            "127.0.0.1:0",
            "--node-ip",
            "127.0.0.1",
            "--runtime",
            self.runtime,
        )
        if self.runtime == "containerd":
            cmd += ["--cri-endpoint", self.cri_endpoint]
        else:
            # Simulated pods get addresses from their own node's range, as on a real cluster.
            cmd += ["--pod-cidr", f"10.244.{index}.0/24"]
        return cmd

    def start(self, n: int) -> list[LocalAgent]:
        for i in range(1, n + 1):
            name = f"node-{i}"
            log_path = os.path.join(self.data_dir, f"{name}.log")
            if self.pki is not None:
                provision_node(self.pki, os.path.join(self.data_dir, name), name, ["127.0.0.1"])
            proc = procs.spawn(self.command(name, i), log_path)
            self.agents.append(LocalAgent(name, log_path, proc))
        return self.agents

    def dead(self) -> list[LocalAgent]:
        return [a for a in self.agents if a.proc.poll() is not None]

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every agent (containers keep running; a restarted agent adopts them)."""
        procs.stop([a.proc for a in self.agents], timeout)
