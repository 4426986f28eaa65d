"""Node agents as local processes, for ``hakube up --nodes M`` and the tests' real nodes.

Each agent is its own ``hakube agent`` process (node ``node-1`` ... ``node-M``) with its root
dir, log (``node-N.log``) and pid file (``node-N.pid``) in the cluster's data dir, its API on a
free loopback port, and the runtime it was given (simulated by default; containerd at the CRI
socket and CNI config directory it is given, by default containerd's own; there node-1's pods
get addresses from its podCIDR, which the controller-manager allocates, and the other nodes'
pods use the host network). Each joins the
cluster with the bootstrap token it is given, on its first start; a restarted agent has its
certificate already and adopts the pods it was running.
The agents are children of a ``hakube.local.supervisor.Supervisor`` (kind ``agent``), so
``hakube up`` restarts one that dies with the same back-off as a master.
"""

from __future__ import annotations

import os

from hakube.cri.client import DEFAULT_ENDPOINT
from hakube.local import procs
from hakube.local.supervisor import Child, RestartPolicy, Supervisor

KIND = "agent"
DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d"
"""Where containerd's CRI plugin reads CNI configs unless its config says otherwise."""


class LocalAgents:
    def __init__(
        self,
        data_dir: str,
        servers: list[str],
        *,
        runtime: str = "simulated",
        cri_endpoint: str = DEFAULT_ENDPOINT,
        cni_conf_dir: str = DEFAULT_CNI_CONF_DIR,
        token: str = "",
        ca_hash: str = "",
        extra_args: list[str] | None = None,
        supervisor: Supervisor | None = None,
        metrics: dict[str, str] | None = None,
    ) -> None:
        """``token``/``ca_hash``: what a node without a certificate joins with.
        ``extra_args``: more ``hakube agent`` flags for every node. ``supervisor``: whose
        children the agents are (default: one of their own that does not restart them).
        ``metrics``: node name -> the loopback HOST:PORT its /metrics is served on."""
        self.metrics = dict(metrics or {})
        self.data_dir = data_dir
        self.servers = servers
        self.token = token
        self.ca_hash = ca_hash
        self.runtime = runtime
        self.cri_endpoint = cri_endpoint
        self.cni_conf_dir = cni_conf_dir
        self.extra_args = list(extra_args or [])
        self.supervisor = supervisor or Supervisor(RestartPolicy(restart=False))

    @property
    def agents(self) -> list[Child]:
        return self.supervisor.of_kind(KIND)

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
        if name in self.metrics:
            cmd += ["--metrics-listen", self.metrics[name]]
        if self.runtime == "containerd":
            cmd += ["--cri-endpoint", self.cri_endpoint, "--cni-conf-dir", self.cni_conf_dir]
            if index > 1:
                # One machine, one containerd, one CNI config: node-1 builds the pod network
                # from the podCIDR the controller-manager gives it; the others' pods share the
                # host's network rather than rewrite that config with their own ranges.
                cmd += ["--pod-network", "host"]
        else:
            # Simulated pods get addresses from their own node's range, as on a real cluster.
            cmd += ["--pod-cidr", f"10.244.{index}.0/24"]
            # No container reads their secret volumes; a development cluster needs no root and
            # leaves no tmpfs mounted behind when it goes down.
            cmd += ["--secret-volumes-on-disk"]
        return cmd + self.extra_args

    def start(self, n: int) -> list[Child]:
        """Start agents ``node-1`` ... ``node-n``."""
        for i in range(1, n + 1):
            name = f"node-{i}"
            self.supervisor.spawn(
                name,
                KIND,
                self.command(name, i),
                os.path.join(self.data_dir, f"{name}.log"),
                pid_file=os.path.join(self.data_dir, f"{name}.pid"),
            )
        return self.agents

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every agent (containers keep running; a restarted agent adopts them)."""
        self.supervisor.stop([KIND], timeout)
