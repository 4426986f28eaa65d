"""``hakube proxy`` on the nodes of a multi-node test cluster (hakube.testing.netnodes).

One proxy process per node, inside the node's network namespace, as the proxy's own identity
(``system:kube-proxy``, certificate from the test CA), against the cluster's masters, with
/metrics on the node's loopback. The processes are ended by pid by :meth:`NodeProxies.close`
and, should a test forget, by the cluster's own teardown (they are registered with it).
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

from hakube.local import procs
from hakube.local.cluster import write_config
from hakube.proxy import nft
from hakube.proxy.fastpath import PREF
from hakube.testing import nsthread
from hakube.testing import pki as testpki
from hakube.testing.netmasters import env as source_env
from hakube.testing.netnodes import NetCluster, NetNode
from hakube.testing.proxylab import full_sync_count, normalised

METRICS_PORT = 10249
TABLE = "hakube-proxy"
UPLINK = "eth0"
"""Each harness node's link to the test bridge."""


class NodeProxies:
    def __init__(
        self,
        cluster: NetCluster,
        *,
        cluster_cidr: str = "10.244.0.0/16",
        untrack: bool = False,
        fast_path: bool = False,
    ) -> None:
        self.cluster = cluster
        self.cluster_cidr = cluster_cidr
        self.untrack = untrack
        self.fast_path = fast_path
        """Run every proxy with ``--fast-path-device`` on the node's uplink (eth0)."""
        self.config = write_config(
            str(cluster.workdir / "proxy.conf"), testpki.shared(), cluster.servers, user="proxy"
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log_path(self, node: NetNode) -> str:
        return str(self.cluster.workdir / f"proxy-{node.name}.log")

    def start(self, node: NetNode) -> None:
        """Start the proxy on ``node`` (unless it runs there)."""
        proc = self.procs.get(node.name)
        if proc is not None and proc.poll() is None:
            return
        argv = procs.hakube_argv(
            "proxy",
            "--servers",
            ",".join(self.cluster.servers),
            "--table",
            TABLE,
            "--cluster-cidr",
            self.cluster_cidr,
            "--metrics-listen",
            f"127.0.0.1:{METRICS_PORT}",
            *(["--untrack-pod-traffic"] if self.untrack else []),
            *(["--fast-path-device", UPLINK] if self.fast_path else []),
        )
        with open(self.log_path(node), "ab") as log:
            proc = subprocess.Popen(
                node.argv(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(source_env(), HAKUBE_CONFIG=self.config),
                start_new_session=True,
            )
        self.cluster._res.procs.append(proc)
        self.procs[node.name] = proc

    def start_all(self) -> None:
        for node in self.cluster.nodes.values():
            self.start(node)

    def kill(self, node: NetNode, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(node.name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(15)

    def metrics(self, node: NetNode) -> str:
        return nsthread.call_in(
            node.netns, nsthread.http_get, "127.0.0.1", METRICS_PORT, path="/metrics"
        )

    def full_syncs(self, node: NetNode) -> int:
        """Full syncs the running proxy on ``node`` made (0 if it does not answer yet)."""
        try:
            return full_sync_count(self.metrics(node))
        except OSError:
            return 0

    def table(self, node: NetNode) -> dict[str, Any]:
        """The proxy's table on ``node``, normalised (hakube.testing.proxylab.normalised)."""
        return normalised(nsthread.call_in(node.netns, nft.list_table, TABLE))

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(15)
        if self.fast_path:  # the program outlives its proxy by design; not the harness' nodes
            for node in self.cluster.nodes.values():
                node.run(
                    ["tc", "filter", "del", "dev", UPLINK, "ingress", "pref", str(PREF)],
                    check=False,
                )
