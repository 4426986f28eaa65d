"""A prototype eBPF fast path for pod-to-pod traffic, to measure what it would save.

Why it exists: on the routed pod network every pod-to-pod packet crosses, per node, a veth
pair and the node's IP forwarding with its netfilter hooks; with the CPU saturated that costs
about a fifth of the throughput of the node's own path (docs/benchmarks.md). The known way
round it -- Cilium's "host routing" -- is a tc program that hands a packet straight from the
node's uplink to the pod's veth peer (``bpf_redirect_peer``) and from the pod's veth straight
to the uplink (``bpf_redirect`` after a FIB lookup), skipping the node's IP stack. This module
builds exactly that, small enough to assemble by hand (no compiler needed on the machine), so
that ``bench.bench_net_ab``'s ``bpf`` variant can measure it on the same cluster as the others.

It is **not** part of hakube, and not safe on a node that runs Services: a packet it redirects
skips conntrack, so the replies of a connection the node translated (a Service's or a
hostPort's DNAT) would reach the pod untranslated. A production version needs to leave those
to the stack (a map of the backends it must not shortcut, written by the proxy and the agent),
decrement the TTL, and handle IPv6. Only TCP/UDP/ICMP over IPv4 between pod addresses with a
resolved neighbour is shortcut; everything else returns ``TC_ACT_OK`` (the normal path).

hakube's own fast path (:mod:`hakube.proxy.fastpath`, ``hakube proxy --fast-path-device``)
is the uplink half of this, with those exceptions; ``python -m bench.bench_net --fast-path``
measures it. Programs are loaded with :mod:`hakube.proxy.bpf`, pinned in a bpffs the caller
mounted, and attached with ``tc filter … bpf da pinned``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from hakube.proxy import bpf
from hakube.proxy.bpf import ins
from hakube.proxy.fastpath import le32

_HELPER_STORE_BYTES, _HELPER_REDIRECT, _HELPER_FIB_LOOKUP, _HELPER_REDIRECT_PEER = 9, 23, 69, 155
_SKB_DATA, _SKB_DATA_END, _SKB_INGRESS_IFINDEX = 76, 80, 36  # offsets in struct __sk_buff
_FIB = -64  # struct bpf_fib_lookup (64 bytes) on the stack: ifindex +8, src +16, dst +32,
_FIB_IFINDEX, _FIB_SMAC, _FIB_DMAC = _FIB + 8, _FIB + 52, _FIB + 58  # smac +52, dmac +58
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
_PASS = "pass"


def _in_net(reg: int, net: ipaddress.IPv4Network, jump_if_inside: bool) -> list[object]:
    """``w8 = reg & mask``; then a jump to pass when the address is (not) in ``net``."""
    op = 0x15 if jump_if_inside else 0x55  # jeq / jne imm
    return [
        ins(0xBC, R8, reg),
        ins(0x54, R8, 0, 0, le32(str(net.netmask))),
        (op, R8, le32(str(net.network_address))),
    ]


def _program(match: Callable[[], list[object]], redirect_helper: int) -> bytes:
    """Parse Ethernet + IPv4 (direct packet access), run ``match`` on w7 = destination,
    look the destination up in the FIB as if forwarding it, write the result's MACs and
    redirect with ``redirect_helper``; any miss jumps to ``return TC_ACT_OK``."""
    out: list[object] = [
        ins(0xBF, R6, R1),  # r6 = skb
        ins(0x61, R2, R6, _SKB_DATA),
        ins(0x61, R3, R6, _SKB_DATA_END),
        ins(0xBF, R4, R2),
        ins(0x07, R4, 0, 0, 34),  # Ethernet (14) + IPv4 (20)
        (0x2D, R4, R3),  # data + 34 > data_end: pass
        ins(0x69, R5, R2, 12),
        (0x55, R5, 0x0008),  # ethertype != IPv4 (0x0800 read little-endian): pass
        ins(0x61, R7, R2, 30),  # destination address
        ins(0x61, R9, R2, 26),  # source address
        ins(0x71, R1, R2, 23),  # protocol
        ins(0x71, R5, R2, 15),  # TOS
        *match(),
    ]
    out += [ins(0x7A, R10, 0, off, 0) for off in range(_FIB, 0, 8)]  # zero the parameters
    out += [
        ins(0x72, R10, 0, _FIB, 2),  # family AF_INET
        ins(0x73, R10, R1, _FIB + 1),  # l4_protocol; tot_len stays 0: no MTU check (GSO)
        ins(0x61, R3, R6, _SKB_INGRESS_IFINDEX),
        ins(0x63, R10, R3, _FIB_IFINDEX),
        ins(0x73, R10, R5, _FIB + 12),
        ins(0x63, R10, R9, _FIB + 16),
        ins(0x63, R10, R7, _FIB + 32),
        ins(0xBF, R1, R6),
        ins(0xBF, R2, R10),
        ins(0x07, R2, 0, 0, _FIB),
        ins(0xB7, R3, 0, 0, 64),
        ins(0xB7, R4, 0, 0, 0),
        ins(0x85, 0, 0, 0, _HELPER_FIB_LOOKUP),
        (0x55, R0, 0),  # not BPF_FIB_LKUP_RET_SUCCESS (no route, no neighbour…): pass
    ]
    for at, field in ((0, _FIB_DMAC), (6, _FIB_SMAC)):  # bpf_skb_store_bytes(skb, at, mac, 6, 0)
        out += [
            ins(0xBF, R1, R6),
            ins(0xB7, R2, 0, 0, at),
            ins(0xBF, R3, R10),
            ins(0x07, R3, 0, 0, field),
            ins(0xB7, R4, 0, 0, 6),
            ins(0xB7, R5, 0, 0, 0),
            ins(0x85, 0, 0, 0, _HELPER_STORE_BYTES),
        ]
    out += [
        ins(0x61, R1, R10, _FIB_IFINDEX),
        ins(0xB7, R2, 0, 0, 0),
        ins(0x85, 0, 0, 0, redirect_helper),
        ins(0x95),  # return the helper's TC_ACT_REDIRECT
    ]
    pass_at = len(out)
    out += [ins(0xB7, R0, 0, 0, 0), ins(0x95)]  # TC_ACT_OK
    code = b""
    for i, item in enumerate(out):
        if isinstance(item, bytes):
            code += item
            continue
        assert isinstance(item, tuple)
        op, dst, arg = item
        off = pass_at - i - 1
        code += ins(op, dst, arg, off) if op == 0x2D else ins(op, dst, 0, off, arg)
    return code


def uplink_program(local_cidr: str) -> bytes:
    """For the uplink's ingress: a packet to a pod of this node goes straight into its netns."""
    local = ipaddress.IPv4Network(local_cidr)
    return _program(lambda: _in_net(R7, local, False), _HELPER_REDIRECT_PEER)


def pod_program(cluster_cidr: str, local_cidr: str) -> bytes:
    """For a pod veth's ingress (node side): a packet to a pod of another node goes straight
    out of the uplink."""
    cluster, local = ipaddress.IPv4Network(cluster_cidr), ipaddress.IPv4Network(local_cidr)
    return _program(
        lambda: _in_net(R7, cluster, False) + _in_net(R7, local, True), _HELPER_REDIRECT
    )


def load_and_pin(code: bytes, path: str) -> None:
    """Load a tc program and pin it at ``path`` (inside a bpffs)."""
    fd = bpf.load_program(code, "hk_podpath")
    try:
        bpf.pin(fd, path)
    finally:
        os.close(fd)
