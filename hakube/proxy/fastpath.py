"""The pod fast path: packets arriving on the node's uplink for one of its pods go straight
into the pod's network namespace, skipping the node's IP forwarding and netfilter.

Why: on the routed pod network a pod-to-pod packet crosses, on the receiving node, the
node's IP stack (route lookup, the netfilter hooks of the proxy's table, conntrack) and then
the pod's veth pair. With the CPU saturated that is about a fifth of the node path's
throughput (docs/benchmarks.md). A tc program on the uplink's ingress does the same routing
decision with one FIB lookup and hands the packet to the pod's side of its veth
(``bpf_redirect_peer``), as Cilium's host routing does.

What it shortcuts, and what it leaves to the stack (``TC_ACT_OK``):

* only TCP and UDP over IPv4, to an address in the cluster CIDR, with TTL > 1, whose route is
  a device other than the uplink and whose neighbour is resolved (the FIB lookup succeeds);
  everything else -- ICMP (an error about a translated connection must be translated too),
  other protocols, traffic to the node itself -- takes the normal path;
* **not** packets whose source is a DNAT backend: the replies of a connection this node
  translated (a pod here reaching a Service whose endpoint is elsewhere) must meet their
  conntrack entry to get the ClusterIP back as their source. The proxy keeps every endpoint
  address it has programmed in a kernel hash map the program consults (added before the nft
  rules that translate to it, never removed while the proxy runs -- a removed endpoint's
  connections may still be open), seeded at start from the DNATed entries in conntrack.

The forwarding it replaces is done faithfully: TTL decremented (with the header checksum),
MACs from the neighbour table. It needs the routed pod network (the agent's default
``--cni-mode routed``: a /32 route per pod through its veth); a route through a bridge has no
veth peer to hand the packet to, so the proxy refuses to start the fast path when a cluster
route points at a bridge. Packets a pod sends still take the node's stack (a hostPort's
replies must be un-DNATed there).

The program stays attached when the proxy stops (as its nft table does); a restarted proxy
replaces it with a fresh map, and ``--fast-path-device ""`` removes it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct
import subprocess
from collections.abc import Iterable

from hakube.proxy import bpf
from hakube.proxy.bpf import ins

log = logging.getLogger("hakube.proxy.fastpath")

PREF = 49000
"""Priority of the proxy's filter on the uplink's ingress (tc's own default starts at 49152)."""
MAX_BACKENDS = 65536
"""Addresses the exception map holds; when it is full the fast path is taken down."""

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
_SKB_DATA, _SKB_DATA_END, _SKB_INGRESS_IFINDEX = 76, 80, 36  # offsets in struct __sk_buff
_FIB = -64  # struct bpf_fib_lookup on the stack (64 bytes)
_KEY = -72  # the map key (the source address)
_WORD = -80  # the rewritten TTL/protocol word
_PASS = "pass"


def le32(address: str) -> int:
    """An IPv4 address as a little-endian 32-bit load of its network-order bytes reads it."""
    value: int = struct.unpack("<I", ipaddress.IPv4Address(address).packed)[0]
    return value - (1 << 32) if value & 0x80000000 else value


def program(cluster_cidr: str, map_fd: int) -> bytes:
    """The uplink's ingress program for pods in ``cluster_cidr``, consulting the map of DNAT
    backends ``map_fd``."""
    net = ipaddress.IPv4Network(cluster_cidr)
    out: list[bytes | tuple[int, int, int]] = [
        ins(0xBF, R6, R1),  # r6 = skb
        ins(0x61, R2, R6, _SKB_DATA),
        ins(0x61, R3, R6, _SKB_DATA_END),
        ins(0xBF, R4, R2),
        ins(0x07, R4, 0, 0, 34),  # Ethernet (14) + IPv4 header (20)
        (0x2D, R4, R3),  # shorter: pass
        ins(0x69, R5, R2, 12),
        (0x55, R5, 0x0008),  # ethertype != IPv4 (0x0800 as a little-endian load reads it)
        ins(0x71, R5, R2, 14),
        ins(0x54, R5, 0, 0, 0xF0),
        (0x55, R5, 0x40),  # IP version != 4
        ins(0x71, R1, R2, 23),  # protocol
        ins(0x15, R1, 0, 1, 6),  # TCP: skip the UDP test
        (0x55, R1, 17),  # neither TCP nor UDP
        ins(0x61, R7, R2, 30),  # destination
        ins(0xBC, R8, R7),
        ins(0x54, R8, 0, 0, le32(str(net.netmask))),
        (0x55, R8, le32(str(net.network_address))),  # not a pod address
        ins(0x61, R9, R2, 26),  # source
        ins(0x69, R8, R2, 22),  # TTL (low byte) and protocol: the word the checksum covers
        ins(0xBC, R4, R8),
        ins(0x54, R4, 0, 0, 0xFF),
        (0xB5, R4, 1),  # TTL <= 1: the stack answers with time exceeded
        ins(0x71, R5, R2, 15),  # TOS
    ]
    out += [ins(0x7A, R10, 0, off, 0) for off in range(_FIB, 0, 8)]  # zero the parameters
    out += [
        ins(0x72, R10, 0, _FIB, socket.AF_INET),  # family
        ins(0x73, R10, R1, _FIB + 1),  # l4_protocol; tot_len stays 0: no MTU check (GSO)
        ins(0x61, R3, R6, _SKB_INGRESS_IFINDEX),
        ins(0x63, R10, R3, _FIB + 8),  # ifindex: as if forwarded from the uplink
        ins(0x73, R10, R5, _FIB + 12),
        ins(0x63, R10, R9, _FIB + 16),
        ins(0x63, R10, R7, _FIB + 32),
        ins(0x63, R10, R9, _KEY),
        bpf.ld_map_fd(R1, map_fd),
        ins(0xBF, R2, R10),
        ins(0x07, R2, 0, 0, _KEY),
        ins(0x85, 0, 0, 0, bpf.MAP_LOOKUP_ELEM),
        (0x55, R0, 0),  # the source is a DNAT backend: its replies need conntrack
        ins(0xBF, R1, R6),
        ins(0xBF, R2, R10),
        ins(0x07, R2, 0, 0, _FIB),
        ins(0xB7, R3, 0, 0, 64),
        ins(0xB7, R4, 0, 0, 0),
        ins(0x85, 0, 0, 0, bpf.FIB_LOOKUP),
        (0x55, R0, 0),  # no route, no neighbour, forwarding off…
        ins(0x61, R2, R10, _FIB + 8),
        ins(0x61, R3, R6, _SKB_INGRESS_IFINDEX),
        (0x1D, R2, R3),  # routed back out of the uplink: not ours
        # TTL - 1: fix the header checksum, then write the word back.
        ins(0xBF, R4, R8),
        ins(0x07, R4, 0, 0, -1),
        ins(0x6B, R10, R4, _WORD),
        ins(0xBF, R1, R6),
        ins(0xB7, R2, 0, 0, 24),
        ins(0xBF, R3, R8),
        ins(0xB7, R5, 0, 0, 2),
        ins(0x85, 0, 0, 0, bpf.L3_CSUM_REPLACE),
    ]
    for at, src, size in ((22, _WORD, 2), (0, _FIB + 58, 6), (6, _FIB + 52, 6)):
        out += [  # bpf_skb_store_bytes(skb, at, stack + src, size, 0): TTL, dmac, smac
            ins(0xBF, R1, R6),
            ins(0xB7, R2, 0, 0, at),
            ins(0xBF, R3, R10),
            ins(0x07, R3, 0, 0, src),
            ins(0xB7, R4, 0, 0, size),
            ins(0xB7, R5, 0, 0, 0),
            ins(0x85, 0, 0, 0, bpf.SKB_STORE_BYTES),
        ]
    out += [
        ins(0x61, R1, R10, _FIB + 8),
        ins(0xB7, R2, 0, 0, 0),
        ins(0x85, 0, 0, 0, bpf.REDIRECT_PEER),
        ins(0x95),  # TC_ACT_REDIRECT
    ]
    return _link(out)


def _link(out: list[bytes | tuple[int, int, int]]) -> bytes:
    """Resolve the ``(op, dst, operand)`` jumps to the final ``return TC_ACT_OK``: an
    operand below 16 with a register op (0x2D, 0x1D) is a register, else an immediate."""
    slots = [len(i) // 8 if isinstance(i, bytes) else 1 for i in out]
    end = sum(slots)
    code, at = b"", 0
    for item, n in zip(out, slots, strict=True):
        if isinstance(item, bytes):
            code += item
        else:
            op, dst, arg = item
            off = end - at - 1
            code += ins(op, dst, arg, off) if op in (0x2D, 0x1D) else ins(op, dst, 0, off, arg)
        at += n
    return code + ins(0xB7, R0, 0, 0, 0) + ins(0x95)


def conntrack_backends(path: str = "/proc/net/nf_conntrack") -> set[str]:
    """Addresses connections in this node's conntrack were DNATed to (the reply direction's
    source differs from the original destination); empty if the table cannot be read."""
    found = set()
    try:
        with open(path) as f:
            for line in f:
                dst = [w[4:] for w in line.split() if w.startswith("dst=")]
                src = [w[4:] for w in line.split() if w.startswith("src=")]
                if len(dst) == 2 and len(src) == 2 and src[1] != dst[0]:
                    found.add(src[1])
    except OSError:
        pass
    return found


def bridged_routes(cluster_cidr: str) -> list[str]:
    """Routes into ``cluster_cidr`` through a bridge (no veth peer to redirect to)."""
    bridges = subprocess.run(
        ["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True, check=False
    ).stdout
    names = {
        line.split(":")[1].strip().split("@")[0] for line in bridges.splitlines() if ":" in line
    }
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "root", cluster_cidr],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    net = ipaddress.IPv4Network(cluster_cidr)
    out = []
    for r in routes:
        words = r.split()
        dev = words[words.index("dev") + 1] if "dev" in words else ""
        dst = words[0]
        if (
            dev in names
            and dst != "default"
            and ipaddress.IPv4Network(dst, strict=False).subnet_of(net)
        ):
            out.append(r)
    return out


def clsact_devices() -> list[str]:
    """Devices with a ``clsact`` qdisc (where a previous run's program could be)."""
    out = subprocess.run(
        ["tc", "qdisc", "show"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return [line.split()[4] for line in out if line.startswith("qdisc clsact") and "dev" in line]


class FastPath:
    """The program on one uplink and its map of DNAT backends."""

    def __init__(self, device: str, cluster_cidr: str) -> None:
        self.device = device
        self.cluster_cidr = cluster_cidr
        self.backends: set[str] = set()
        self._map: bpf.HashMap | None = None

    def start(self) -> None:
        """Create the map (seeded from conntrack), load the program and attach it, replacing
        a previous proxy's; ``bpf.BpfError`` or ValueError if it cannot."""
        bridged = bridged_routes(self.cluster_cidr)
        if bridged:
            raise ValueError(
                f"--fast-path-device: pod routes go through a bridge ({bridged[0]}); the fast "
                "path needs the routed pod network (hakube agent --cni-mode routed)"
            )
        self._map = bpf.HashMap(4, MAX_BACKENDS)
        self.add(conntrack_backends())
        fd = bpf.load_program(program(self.cluster_cidr, self._map.fd), "hakube_fastpath")
        try:
            bpf.attach_ingress(self.device, fd, PREF)
        finally:
            os.close(fd)
        log.info("proxy: pod fast path on %s (%d backends seeded)", self.device, len(self.backends))

    def add(self, addresses: Iterable[str]) -> None:
        """Make sure packets from ``addresses`` take the stack. When the map is full the fast
        path is removed (everything takes the stack) rather than risk an untranslated reply."""
        assert self._map is not None
        for a in addresses:
            if a in self.backends:
                continue
            try:
                self._map.put(ipaddress.IPv4Address(a).packed)
            except bpf.BpfError as exc:
                log.error("proxy: fast path map full (%s); removing the fast path", exc)
                self.remove(self.device)
                raise
            self.backends.add(a)

    @staticmethod
    def remove(device: str) -> bool:
        """Take the proxy's program off ``device``; whether it was there."""
        return bpf.detach_ingress(device, PREF)

    def close(self) -> None:
        """Drop this process's reference to the map; the attached program keeps it alive."""
        if self._map is not None:
            self._map.close()
            self._map = None
