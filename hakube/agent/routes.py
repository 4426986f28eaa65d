"""Routes to the other nodes' pods, host-gw style: ``<their podCIDR> via <their InternalIP>``.

Every node's pods live on a bridge inside that node (hakube.agent.network), with addresses from
the node's ``spec.podCIDR``. For a pod on node A to reach a pod on node B, node A needs a route
sending B's podCIDR to B's address; B's forwarding then delivers it to its bridge. That needs
the nodes to share one L2 segment (a next hop must be directly reachable); otherwise the
``vxlan`` mode (hakube.agent.vxlan) routes the same ranges through a tunnel.

``PodRoutes`` watches the Node objects and keeps exactly those routes in the agent's network
namespace, one per other node that has a podCIDR and an InternalIP. It only ever touches routes
marked with its own protocol number (``proto 233``, ``ROUTE_PROTO``): a full resync at start
and every ``resync`` seconds lists them, removes the stale ones and leaves every other route of
the host alone. Changes are applied within ``debounce`` seconds of the watch event.

Nodes it does not route: itself; nodes whose InternalIP is a loopback address or its own (several
agents on one host, as ``hakube up --nodes`` runs, share one network); podCIDRs that overlap its
own; IPv6 ranges (not done yet). It also calls ``on_own_cidr`` with its own Node's podCIDR when
one appears, so an agent that registered before the controller-manager gave it a range builds
its pod network then.

Forwarding: a node must forward pod traffic (``net.ipv4.ip_forward=1``); the agent sets it when
it has a first route to program (the CNI bridge plugin sets it too, with the first pod).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from typing import Any

from hakube.agent import iproute, vxlan
from hakube.api.v1 import core_pb2
from hakube.client import Client

log = logging.getLogger("hakube.agent.routes")

ROUTE_PROTO = 233
"""The routing protocol number marking the routes this agent owns (``ip route ... proto 233``);
nothing else on a Debian host uses it (see /etc/iproute2/rt_protos)."""
FORWARD_SYSCTL = "/proc/sys/net/ipv4/ip_forward"


def ip_route(*args: str) -> str:
    return iproute.run("ip", "-4", "route", *args)


def owned_routes(proto: int = ROUTE_PROTO) -> dict[str, str]:
    """The routes marked ``proto`` in this namespace: destination CIDR -> next hop."""
    out = {}
    for line in ip_route("show", "proto", str(proto)).splitlines():
        words = line.split()
        if "via" in words and words:
            out[str(ipaddress.ip_network(words[0]))] = words[words.index("via") + 1]
    return out


def internal_ip(node: core_pb2.Node) -> str:
    return next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")


def desired_routes(nodes: list[core_pb2.Node], me: str, my_ip: str, my_cidr: str) -> dict[str, str]:
    """podCIDR -> InternalIP for every other node this node should route to (see the module
    docstring for who is left out)."""
    mine = _net(my_cidr)
    out: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        via, cidr = internal_ip(node), _net(node.spec.pod_cidr)
        if node.metadata.name == me or cidr is None or cidr.version != 4 or not via:
            continue
        try:
            hop = ipaddress.ip_address(via)
        except ValueError:
            continue
        if hop.is_loopback or via == my_ip or hop.version != 4:
            continue
        if mine is not None and cidr.overlaps(mine):  # type: ignore[arg-type]
            continue
        out[str(cidr)] = via
    return out


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text) if text else None
    except ValueError:
        return None


class PodRoutes:
    """See the module docstring. A ``hakube.lifecycle.Service``: ``run()`` keeps the routes
    until ``stop()``; ``ready`` once the node cache synced. The routes stay when the agent
    stops (pods keep running and reachable while it is away)."""

    def __init__(
        self,
        client: Client,
        node_name: str,
        host_ip: str,
        *,
        on_own_cidr: Callable[[str], None] | None = None,
        mode: str = "host-gw",
        proto: int = ROUTE_PROTO,
        debounce: float = 0.1,
        resync: float = 30.0,
    ) -> None:
        self.node_name = node_name
        self.host_ip = host_ip
        self.mode = mode
        self.proto = proto
        self.debounce = debounce
        self.resync = resync
        self.on_own_cidr = on_own_cidr
        self.nodes: Any = client.nodes.informer()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._failed: dict[str, str] = {}
        self._forwarding = False
        self.own_cidr = ""

    def run(self) -> None:
        if self._stop.is_set():
            return
        self.nodes.add_handlers(
            on_add=self._changed, on_update=self._updated, on_delete=self._changed
        )
        self.nodes.start()
        try:
            self._keep()
        finally:
            self.nodes.stop()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()

    def _changed(self, node: core_pb2.Node) -> None:
        self._dirty.set()

    def _updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        # Nodes rewrite their status often (heartbeats); only a range or an address matters.
        if (old.spec.pod_cidr, internal_ip(old)) != (new.spec.pod_cidr, internal_ip(new)):
            self._dirty.set()

    def _keep(self) -> None:
        while not self._stop.is_set() and not self.nodes.wait_for_sync(1):
            pass
        if not self._stop.is_set():
            self.ready.set()
        while not self._stop.is_set():
            try:
                self.sync()
            except (iproute.IprouteError, OSError) as e:
                log.warning("pod routes: %s", e)
            self._dirty.wait(self.resync)
            if self._stop.wait(self.debounce):
                return
            self._dirty.clear()

    def sync(self) -> None:
        """Make this namespace's ``proto`` routes match the Node objects in the cache."""
        nodes = self.nodes.list()
        me = next((n for n in nodes if n.metadata.name == self.node_name), None)
        if me is not None and me.spec.pod_cidr and me.spec.pod_cidr != self.own_cidr:
            self.own_cidr = me.spec.pod_cidr
            if self.on_own_cidr is not None:
                self.on_own_cidr(self.own_cidr)
        peers = desired_routes(nodes, self.node_name, self.host_ip, self.own_cidr)
        extra: tuple[str, ...] = ()
        want = dict(peers)
        if self.mode == "vxlan":
            if not self.own_cidr:
                return  # the device's address comes from the podCIDR: wait for it
            vxlan.guard(list(peers.values()))  # first: no device without its guard
            vxlan.ensure_device(self.host_ip, self.own_cidr)
            vxlan.sync_peers(peers)
            want = {cidr: vxlan.gateway(cidr) for cidr in peers}
            extra = ("dev", vxlan.DEVICE, "onlink")
        have = owned_routes(self.proto)
        if want and not self._forwarding:
            self._forwarding = _enable_forwarding()
        for cidr in sorted(set(have) - set(want)):
            ip_route("del", cidr, "proto", str(self.proto))
            log.info("route %s via %s removed (node gone or changed)", cidr, have[cidr])
        for cidr, via in want.items():
            if have.get(cidr) == via:
                continue
            try:
                ip_route("replace", cidr, "via", via, *extra, "proto", str(self.proto))
            except iproute.IprouteError as e:
                if self._failed.get(cidr) != str(e):  # say it once, not every resync
                    log.warning("route %s via %s: %s", cidr, via, e)
                self._failed[cidr] = str(e)
                continue
            self._failed.pop(cidr, None)
            log.info("route %s via %s%s", cidr, via, f" dev {vxlan.DEVICE}" if extra else "")


def _enable_forwarding() -> bool:
    """Set net.ipv4.ip_forward=1 unless it is; False (and a warning) when it cannot be."""
    try:
        with open(FORWARD_SYSCTL) as f:
            if f.read().strip() == "1":
                return True
        with open(FORWARD_SYSCTL, "w") as f:
            f.write("1\n")
        log.info("enabled IPv4 forwarding (net.ipv4.ip_forward=1) for pod traffic")
        return True
    except OSError as e:
        log.warning("cannot enable IPv4 forwarding (%s): pods of other nodes are unreachable", e)
        return False
