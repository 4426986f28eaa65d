"""VXLAN mode of the pod routes, for nodes that do not share one L2 segment.

host-gw routes need each node's address to be a directly reachable next hop. With
``--pod-routes vxlan`` the agent instead builds one VXLAN device, ``hakube.vxlan`` (VNI 4242,
UDP 4789, its local end the node's InternalIP), and sends every other node's podCIDR over it:
the pods' packets travel inside UDP between the nodes' addresses, which only need to reach
each other by IP (through routers too).

Per other node R (InternalIP ``R.ip``, podCIDR ``R.cidr``), in the manner of flannel's vxlan
backend, but with nothing to exchange beyond the Node objects:

* the route ``R.cidr via <R.cidr's network address> dev hakube.vxlan onlink proto 233``;
* a permanent neighbour entry: that gateway address has R's device MAC;
* a permanent forwarding entry: R's device MAC lives at ``R.ip``.

Each device's MAC is derived from its node's InternalIP (``0a:58:`` + the four address bytes),
so every node knows every other node's without annotations. The device carries its own
podCIDR's network address (/32), so traffic the node itself sends to remote pods has a pod
range source the other side routes back. Its MTU is 1450 (a 1500-byte underlay minus the 50
bytes of VXLAN over IPv4); the pods' CNI bridge uses the same MTU in this mode.

Every node of a cluster must use the same mode. Only the device, its neighbour and forwarding
entries and the ``proto 233`` routes are the agent's; nothing else is touched.
"""

from __future__ import annotations

import ipaddress

from hakube.agent.iproute import IprouteError
from hakube.agent.iproute import run as _run

DEVICE = "hakube.vxlan"
VNI = 4242
PORT = 4789
MTU = 1450
"""A 1500-byte underlay less 50 bytes of outer IPv4, UDP and VXLAN headers."""


def vtep_mac(node_ip: str) -> str:
    """The VXLAN device MAC of the node at ``node_ip`` (locally administered, unicast)."""
    b = ipaddress.IPv4Address(node_ip).packed
    return "0a:58:" + ":".join(f"{x:02x}" for x in b)


def gateway(cidr: str) -> str:
    """The address a podCIDR is routed to over the device: its network address."""
    return str(ipaddress.ip_network(cidr).network_address)


def ensure_device(local_ip: str, own_cidr: str) -> None:
    """Create (or keep) the device with its MAC, MTU and own address, and set it up."""
    if not _exists():
        _run(
            *("ip", "link", "add", DEVICE, "type", "vxlan", "id", str(VNI)),
            *("local", local_ip, "dstport", str(PORT), "nolearning"),
        )
    _run("ip", "link", "set", DEVICE, "address", vtep_mac(local_ip), "mtu", str(MTU))
    _run("ip", "link", "set", DEVICE, "up")
    if own_cidr:
        _run("ip", "addr", "replace", f"{gateway(own_cidr)}/32", "dev", DEVICE)


def _exists() -> bool:
    try:
        _run("ip", "link", "show", "dev", DEVICE)
        return True
    except IprouteError:
        return False


def sync_peers(peers: dict[str, str]) -> None:
    """Make the device's neighbour and forwarding entries match ``peers`` (podCIDR -> node
    address): add what is missing, replace what changed, delete what no peer explains."""
    want_neigh = {gateway(c): vtep_mac(ip) for c, ip in peers.items()}
    want_fdb = {vtep_mac(ip): ip for ip in peers.values()}
    have_neigh = {}
    for line in _run("ip", "-4", "neigh", "show", "dev", DEVICE).splitlines():
        w = line.split()
        if "lladdr" in w:
            have_neigh[w[0]] = w[w.index("lladdr") + 1]
    have_fdb = {}
    for line in _run("bridge", "fdb", "show", "dev", DEVICE).splitlines():
        w = line.split()
        if "dst" in w and w[0] != "00:00:00:00:00:00":
            have_fdb[w[0]] = w[w.index("dst") + 1]
    for addr in set(have_neigh) - set(want_neigh):
        _run("ip", "neigh", "del", addr, "dev", DEVICE)
    for mac in set(have_fdb) - set(want_fdb):
        _run("bridge", "fdb", "del", mac, "dev", DEVICE, "dst", have_fdb[mac])
    for mac, ip in want_fdb.items():
        if have_fdb.get(mac) != ip:
            _run("bridge", "fdb", "replace", mac, "dev", DEVICE, "dst", ip, "self", "permanent")
    for addr, mac in want_neigh.items():
        if have_neigh.get(addr) != mac:
            _run(
                *("ip", "neigh", "replace", addr, "lladdr", mac),
                *("dev", DEVICE, "nud", "permanent"),
            )
