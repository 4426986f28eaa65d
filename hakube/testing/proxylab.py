"""A node for service-proxy tests: one network namespace with pods on a bridge and a client host.

Layout (every name ``hk<pid>x<hex4>-…``, so a run killed too hard is swept up by the next
``hakube.testing.netns.Network``)::

    client 192.0.2.2 ── ext0 192.0.2.1 ── node ── cbr0 10.244.0.1/24 ─┬─ pod1 10.244.0.11
                                          (ip_forward=1)             ├─ pod2 10.244.0.12
                                                                     └─ …

The node routes the Service range to ``cbr0`` (a real node's default route plays that part),
the client routes it to the node, pods default to the node. ``hakube proxy`` runs inside the
node (``ip netns exec``) and reaches the test's masters on the host's loopback through a
:class:`~hakube.testing.nsthread.Forward`. Pods serve HTTP from the test process
(:class:`~hakube.testing.nsthread.HttpServer`), answering with their name.

:meth:`ProxyLab.close` (the context manager calls it) kills the proxy and deletes every
namespace -- the links, routes and the proxy's table go with them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import hakube
from hakube.proxy.nft import NAT_BACKENDS
from hakube.testing import nsthread
from hakube.testing.netns import cleanup_stale, ip

NODE_IP = "192.0.2.1"
CLIENT_IP = "192.0.2.2"
GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/12"
POD_PORT = 8080


def pod_ip(i: int) -> str:
    return f"10.244.0.{10 + i}"


def normalised(table: dict[str, Any] | None) -> dict[str, Any]:
    """A table from ``nft -j list table`` without handles or order: chains -> rules (in
    order), maps and sets -> type and sorted elements (without their expiry countdown).
    The elements of ``nat-backends`` are left out: traffic adds them, not the proxy, so two
    listings of the same programmed table differ in them (hakube.proxy.nft)."""
    out: dict[str, Any] = {}
    for item in (table or {}).get("nftables", []):
        for what, body in item.items():
            if what == "chain":
                hook = (body.get("hook"), body.get("prio"), body.get("type"))
                out.setdefault(f"chain {body['name']}", {"hook": hook, "rules": []})["hook"] = hook
            elif what == "rule":
                chain = out.setdefault(f"chain {body['chain']}", {"hook": None, "rules": []})
                chain["rules"].append(json.dumps(body["expr"], sort_keys=True))
            elif what in ("map", "set"):
                learnt = body["name"] == NAT_BACKENDS
                elems = sorted(
                    json.dumps(_timeless(e), sort_keys=True)
                    for e in ([] if learnt else body.get("elem", []))
                )
                out[f"{what} {body['name']}"] = {"type": body.get("type"), "elem": elems}
    return out


def full_sync_count(metrics: str) -> int:
    """``hakube_proxy_sync_duration_seconds_count{mode="full"}`` from a /metrics page."""
    for line in metrics.splitlines():
        if line.startswith('hakube_proxy_sync_duration_seconds_count{mode="full"}'):
            return int(float(line.split()[-1]))
    return 0


def _timeless(elem: Any) -> Any:
    """A set element without its countdown (``expires`` of a dynamic set's entry)."""
    if isinstance(elem, dict) and isinstance(elem.get("elem"), dict):
        return {k: v for k, v in elem["elem"].items() if k != "expires"}
    return elem


def _veth(netns: str, name: str, peer_netns: str) -> None:
    """A veth pair: ``name`` in ``netns``, ``eth0`` in ``peer_netns``."""
    ip(
        "-n",
        netns,
        "link",
        "add",
        name,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        peer_netns,
    )


def _env() -> dict[str, str]:
    root = str(Path(hakube.__file__).resolve().parents[1])
    extra = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{root}:{extra}" if extra else root)


class ProxyLab:
    def __init__(self, workdir: str, *, pods: int = 3) -> None:
        cleanup_stale()
        self.prefix = f"hk{os.getpid()}x{secrets.token_hex(2)}"
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.table = f"hakube-proxy-{secrets.token_hex(3)}"
        self.namespaces: list[str] = []
        self.servers: list[nsthread.HttpServer] = []
        self.forward: nsthread.Forward | None = None
        self.proxy: subprocess.Popen[bytes] | None = None
        try:
            self._build(pods)
        except BaseException:
            self.close()
            raise

    def _ns(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def _build(self, pods: int) -> None:
        self.node = node = self._ns("node")
        self.client = client = self._ns("cli")
        ip("-n", node, "link", "add", "cbr0", "type", "bridge")
        ip("-n", node, "addr", "add", f"{GATEWAY}/24", "dev", "cbr0")
        ip("-n", node, "link", "set", "cbr0", "up")
        _veth(node, "ext0", client)
        ip("-n", node, "addr", "add", f"{NODE_IP}/24", "dev", "ext0")
        ip("-n", node, "link", "set", "ext0", "up")
        ip("-n", client, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        ip("-n", client, "link", "set", "eth0", "up")
        ip("-n", client, "route", "add", SERVICE_CIDR, "via", NODE_IP)
        ip("-n", node, "route", "add", SERVICE_CIDR, "dev", "cbr0")
        subprocess.run(
            ["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True
        )
        self.pods: list[str] = []
        for i in range(1, pods + 1):
            pod = self._ns(f"pod{i}")
            _veth(node, f"vp{i}", pod)
            ip("-n", node, "link", "set", f"vp{i}", "master", "cbr0")
            # Hairpin: with br_netfilter loaded, a pod's packet DNATed back to the pod itself
            # is bridged out of the port it came in on (the CNI bridge's hairpinMode).
            ip("-n", node, "link", "set", f"vp{i}", "type", "bridge_slave", "hairpin", "on")
            ip("-n", node, "link", "set", f"vp{i}", "up")
            ip("-n", pod, "addr", "add", f"{pod_ip(i)}/24", "dev", "eth0")
            ip("-n", pod, "link", "set", "eth0", "up")
            ip("-n", pod, "route", "add", "default", "via", GATEWAY)
            self.servers.append(nsthread.HttpServer(pod, f"pod{i}", pod_ip(i), POD_PORT))
            self.pods.append(pod)

    # -- the proxy ------------------------------------------------------------------------------

    def start_proxy(
        self, servers: list[str], *extra: str, env: dict[str, str] | None = None
    ) -> None:
        """Start ``hakube proxy`` in the node against ``servers`` (host-loopback HOST:PORTs)."""
        if self.forward is None:
            ports = [int(s.rsplit(":", 1)[1]) for s in servers]
            self.forward = nsthread.Forward(self.node, ports)
        argv = ["ip", "netns", "exec", self.node, sys.executable, "-m", "hakube", "proxy"]
        argv += ["--servers", ",".join(servers), "--table", self.table]
        argv += ["--metrics-listen", "127.0.0.1:10249", "--check-interval", "1", *extra]
        with open(os.path.join(self.workdir, "proxy.log"), "ab") as log:
            self.proxy = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(_env(), **(env or {})),
                start_new_session=True,
            )

    def run_nft(self, *args: str) -> str:
        """``nft ARGS`` in the node; its stdout."""
        argv = ["ip", "netns", "exec", self.node, "nft", *args]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    def kill_proxy(self, sig: int = signal.SIGKILL) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.send_signal(sig)
            self.proxy.wait(10)

    def log(self) -> str:
        try:
            return Path(self.workdir, "proxy.log").read_text()[-3000:]
        except OSError:
            return ""

    def metrics(self) -> str:
        return nsthread.call_in(self.node, nsthread.http_get, "127.0.0.1", 10249, path="/metrics")

    def full_syncs(self) -> int:
        """Full syncs the running proxy made (0 if it does not answer yet)."""
        try:
            return full_sync_count(self.metrics())
        except OSError:
            return 0

    def table_state(self) -> dict[str, Any]:
        from hakube.proxy import nft

        return normalised(nsthread.call_in(self.node, nft.list_table, self.table))

    # -- traffic --------------------------------------------------------------------------------

    def get(self, netns: str, host: str, port: int, *, timeout: float = 2.0) -> str:
        """One HTTP GET from inside ``netns``; the serving pod's name (OSError on failure)."""
        return nsthread.call_in(netns, nsthread.http_get, host, port, timeout=timeout).strip()

    def close(self) -> None:
        self.kill_proxy()
        if self.forward is not None:
            self.forward.close()
        for s in self.servers:
            s.close()
        for ns in reversed(self.namespaces):
            ip("netns", "del", ns, check=False)
        self.namespaces.clear()

    def __enter__(self) -> ProxyLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
