"""Node agents as local processes, for ``hakube up --nodes M``.

Each agent is its own ``hakube agent`` process (node ``node-1`` ... ``node-M``) with its root
dir and log under the cluster's data dir, its API on a free loopback port, and the runtime
``hakube up`` was given (simulated by default; containerd at the default CRI socket). Each
joins the cluster with the bootstrap token it is given, on its first start.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from hakube import procs
from hakube.cri.client import DEFAULT_ENDPOINT


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
        token: str = "",
        ca_hash: str = "",
    ) -> None:
        """``token``/``ca_hash``: what a node without a certificate joins with."""
        self.data_dir = data_dir
        self.servers = servers
        self.token = token
        self.ca_hash = ca_hash
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
        if self.token:
            cmd += ["--token", self.token, "--ca-cert-hash", self.ca_hash]
        if self.runtime == "containerd":
            cmd += ["--cri-endpoint", self.cri_endpoint]
        else:
            # Simulated pods get addresses from their own node's range, as on a real cluster.
            cmd += ["--pod-cidr", f"10.244.{index}.0/24"]
            # No container reads their secret volumes; a development cluster needs no root and
            # leaves no tmpfs mounted behind when it goes down.
            cmd += ["--secret-volumes-on-disk"]
        return cmd

    def start(self, n: int) -> list[LocalAgent]:
        for i in range(1, n + 1):
            name = f"node-{i}"
            log_path = os.path.join(self.data_dir, f"{name}.log")
            proc = procs.spawn(self.command(name, i), log_path)
            self.agents.append(LocalAgent(name, log_path, proc))
        return self.agents

    def dead(self) -> list[LocalAgent]:
        return [a for a in self.agents if a.proc.poll() is not None]

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every agent (containers keep running; a restarted agent adopts them)."""
        procs.stop([a.proc for a in self.agents], timeout)
