"""The proxy's table as ``nft -f`` transactions, and the one way it talks to the kernel.

Every change is one transaction (``nft -f -`` applies a file all or nothing), so the kernel
never holds half a sync:

* :func:`full` replaces the whole table in one go: every chain and map of the old table is
  flushed (what is no longer wanted deleted) and everything is added again -- or, when the
  table cannot be read, ``add table; delete table; add table …``. A restarted proxy starts this
  way: the old rules stay in force until the new ones replace them in the same instant, so
  there are no duplicates and no gap; established connections keep their conntrack NAT state,
  and ClientIP affinity sets keep their entries.
* :func:`diff` changes only what differs between two rulesets: new chains are added, changed
  ones flushed and refilled, map elements deleted and added, chains and sets nobody references
  any more deleted -- in an order the kernel accepts within one transaction (references go
  before what they point at is deleted; chains exist before rules jump to them).

The table is never deleted on exit: while the proxy is down, the rules it left keep working.

Pod-to-pod traffic can skip conntrack (``notrack``, when :func:`full` is given the pod
network: the proxy's ``--untrack-pod-traffic``, off by default): a packet between two pod
addresses needs no connection state on a node unless that node translated its connection (a
Service's or a hostPort's DNAT); on nodes where conntrack's table fills up, or its per-packet
work shows, that is work for nothing (on the benchmark machine it measured within the noise,
docs/benchmarks.md). So a ``raw`` prerouting chain marks TCP and UDP
between pod addresses untracked -- except packets coming *from* a DNAT backend (the replies of
a translated connection, which must meet their conntrack entry to be translated back). The
backends are learnt, not configured: every packet of a DNATed connection refreshes its
translated destination (address . protocol . port) in the timeout set ``nat-backends``, for
as long as conntrack keeps an established TCP connection (5 days), so a Service's, a
hostPort's (the CNI ``portmap`` plugin's DNAT) and a since-removed endpoint's replies all stay
tracked. A full sync keeps that set's entries (a restarted proxy must not forget a live
connection's backend).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from hakube.proxy.rules import (
    HAIRPIN,
    MAPS,
    MASQ_CHAIN,
    NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    REJECT_CHAIN,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    Ruleset,
)

MASQ_MARK = "0x4000"
_MAP_TYPES = {
    SERVICE_IPS: "ipv4_addr . inet_proto . inet_service",
    SERVICE_NODEPORTS: "inet_proto . inet_service",
    NO_ENDPOINT_SERVICES: "ipv4_addr . inet_proto . inet_service",
    NO_ENDPOINT_NODEPORTS: "inet_proto . inet_service",
    HAIRPIN: "ipv4_addr . ipv4_addr",
}
NAT_BACKENDS = "nat-backends"
"""The learnt set of DNAT backends (address . protocol . port) whose replies stay tracked."""
NAT_BACKEND_TIMEOUT = "5d"
"""How long a backend stays in :data:`NAT_BACKENDS` after the last packet of a translated
connection: the kernel's ``nf_conntrack_tcp_timeout_established`` default (432,000 s)."""
NAT_BACKENDS_SIZE = 262144
"""The set's bound; a node translating to more distinct backends within the timeout would
fail to learn new ones (their replies would lose the translation back)."""
RAW_CHAIN = "raw-prerouting"
LEARN_CHAIN = "nat-backends-learn"

_NODEPORT_DST = "fib daddr type local ip daddr != 127.0.0.0/8"
"""Addresses NodePorts answer on: the node's own, but loopback (DNAT from 127/8 does not
route without route_localnet, which the proxy leaves alone)."""

# (name, hook declaration, rules) of the fixed chains; hooked ones first get their hook.
_SKELETON: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (REJECT_CHAIN, "", ("reject",)),
    (MASQ_CHAIN, "", (f"meta mark set meta mark | {MASQ_MARK}",)),
    (
        "masquerading",
        "",
        (
            # Hairpin: a pod that reached itself through a Service (source = destination after
            # DNAT) is masqueraded, or it would answer itself directly.
            f"ip saddr . ip daddr @{HAIRPIN} meta mark set meta mark | {MASQ_MARK}",
            f"meta mark & {MASQ_MARK} == 0 return",
            f"meta mark set meta mark ^ {MASQ_MARK}",
            "masquerade fully-random",
        ),
    ),
    (
        "services",
        "",
        (
            f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
            f"{_NODEPORT_DST} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
        ),
    ),
    (
        "endpoints-check",
        "",
        (
            f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",
            f"{_NODEPORT_DST} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
        ),
    ),
    # Refusals are filter-hook work (reject is not allowed in NAT chains): new connections to
    # a service port without endpoints, from the node (output), routed through it (forward),
    # or to a NodePort of its own (input).
    (
        "filter-input",
        "type filter hook input priority -110",
        ("ct state new jump endpoints-check",),
    ),
    (
        "filter-forward",
        "type filter hook forward priority -110",
        ("ct state new jump endpoints-check",),
    ),
    (
        "filter-output",
        "type filter hook output priority -110",
        ("ct state new jump endpoints-check",),
    ),
    # DNAT: traffic arriving (pods, other hosts) and traffic the node itself sends.
    ("nat-prerouting", "type nat hook prerouting priority dstnat", ("jump services",)),
    ("nat-output", "type nat hook output priority -100", ("jump services",)),
    ("nat-postrouting", "type nat hook postrouting priority srcnat", ("jump masquerading",)),
)


def untracked_chains(pod_cidr: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """The chains that exempt pod-to-pod traffic in ``pod_cidr`` from conntrack (none if
    it is empty)."""
    if not pod_cidr:
        return ()
    pods = f"ip saddr {pod_cidr} ip daddr {pod_cidr}"
    backend = "ip saddr . meta l4proto . th sport"
    return (
        (
            RAW_CHAIN,
            "type filter hook prerouting priority raw",
            (f"{pods} meta l4proto {{ tcp, udp }} {backend} != @{NAT_BACKENDS} notrack",),
        ),
        (
            LEARN_CHAIN,
            "type filter hook postrouting priority srcnat + 10",
            (
                "ct status dnat ct direction original update "
                f"@{NAT_BACKENDS} {{ ip daddr . meta l4proto . th dport }}",
            ),
        ),
    )


def _backends_decl(t: str) -> str:
    return (
        f"add set {t} {NAT_BACKENDS} {{ typeof ip daddr . meta l4proto . th dport ; "
        f"size {NAT_BACKENDS_SIZE} ; flags dynamic,timeout ; timeout {NAT_BACKEND_TIMEOUT} ; }}"
    )


class NftError(RuntimeError):
    """``nft`` refused a transaction or could not run; the message holds its first error."""


def _chain_decl(t: str, name: str, hook: str) -> str:
    return f"add chain {t} {name} {{ {hook} ; }}" if hook else f"add chain {t} {name}"


def _elements(t: str, verb: str, m: str, items: list[str]) -> list[str]:
    return [f"{verb} element {t} {m} {{ {', '.join(items)} }}"] if items else []


def _item(key: str, value: str) -> str:
    """A map element ``key : value``, or a set element (no value)."""
    return f"{key} : {value}" if value else key


def _declare(t: str, m: str) -> str:
    if m == HAIRPIN:
        return f"add set {t} {m} {{ type {_MAP_TYPES[m]} ; }}"
    return f"add map {t} {m} {{ type {_MAP_TYPES[m]} : verdict ; }}"


def full(
    table: str, rs: Ruleset, existing: dict[str, Any] | None = None, *, untracked: str = ""
) -> str:
    """One transaction that makes ``table`` (family ip) the skeleton plus ``rs``.

    ``untracked``: the pod network (a CIDR) whose pod-to-pod traffic skips conntrack (see the
    module's docstring); empty: everything is tracked, and the chains and set for it go.

    ``existing``: the table as ``list_table`` read it. Then the table is emptied in place --
    every chain and map flushed, what is no longer wanted deleted -- and the affinity sets
    that stay keep their entries (a restarted proxy does not reshuffle ClientIP-affine
    clients). Without it the table is deleted and made anew.
    """
    t = f"ip {table}"
    skeleton = _SKELETON + untracked_chains(untracked)
    keep = {HAIRPIN, NAT_BACKENDS} if untracked else {HAIRPIN}
    out = [f"add table {t}"]
    if existing is None:
        out += [f"delete table {t}", f"add table {t}"]
    else:
        chains, maps, sets = _objects(existing)
        wanted = {name for name, _, _ in skeleton} | set(rs.chains)
        out += [f"flush chain {t} {c}" for c in chains]
        out += [f"flush map {t} {m}" for m in maps]
        out += [f"flush set {t} {HAIRPIN}" for s in sets if s == HAIRPIN]
        out += [f"delete chain {t} {c}" for c in chains if c not in wanted]
        out += [f"delete map {t} {m}" for m in maps if m not in MAPS]
        out += [f"delete set {t} {s}" for s in sets if s not in rs.sets and s not in keep]
    out += [_declare(t, m) for m in MAPS]
    out += [_backends_decl(t)] if untracked else []
    out += [f"add set {t} {name} {{ {spec} }}" for name, spec in sorted(rs.sets.items())]
    out += [_chain_decl(t, name, hook) for name, hook, _ in skeleton]
    out += [f"add chain {t} {name}" for name in rs.chains]
    for name, _, rules in skeleton:
        out += [f"add rule {t} {name} {r}" for r in rules]
    for name, rules in rs.chains.items():
        out += [f"add rule {t} {name} {r}" for r in rules]
    for m in MAPS:
        items = [_item(k, v) for k, v in sorted(rs.elements[m].items())]
        out += _elements(t, "add", m, items)
    return "\n".join(out) + "\n"


def _objects(existing: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Names of the chains, maps and sets in a table as ``nft -j`` lists it."""
    found: dict[str, list[str]] = {"chain": [], "map": [], "set": []}
    for item in existing.get("nftables", []):
        for what, body in item.items():
            if what in found:
                found[what].append(body["name"])
    return found["chain"], found["map"], found["set"]


def diff(table: str, old: Ruleset, new: Ruleset) -> str:
    """One transaction taking ``table`` from ``old`` to ``new``; "" if nothing differs."""
    t = f"ip {table}"
    added = [c for c in new.chains if c not in old.chains]
    changed = [c for c in new.chains if c in old.chains and old.chains[c] != new.chains[c]]
    removed = [c for c in old.chains if c not in new.chains]
    out = [f"add set {t} {s} {{ {spec} }}" for s, spec in new.sets.items() if s not in old.sets]
    out += [f"add chain {t} {c}" for c in added]
    out += [f"flush chain {t} {c}" for c in changed]
    adds: dict[str, list[str]] = {}
    for m in MAPS:
        before, after = old.elements[m], new.elements[m]
        gone = [k for k, v in before.items() if after.get(k) != v]
        out += _elements(t, "delete", m, gone)
        adds[m] = [_item(k, v) for k, v in after.items() if before.get(k) != v]
    out += [f"flush chain {t} {c}" for c in removed]
    out += [f"delete chain {t} {c}" for c in removed]
    out += [f"delete set {t} {s}" for s in old.sets if s not in new.sets]
    for c in added + changed:
        out += [f"add rule {t} {c} {r}" for r in new.chains[c]]
    for m in MAPS:
        out += _elements(t, "add", m, adds[m])
    return "\n".join(out) + "\n" if out else ""


def _run(
    nft: str, args: list[str], stdin: str | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [nft, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NftError(f"{nft}: {exc}") from exc


def apply(transaction: str, *, nft: str = "nft", timeout: float = 60.0) -> None:
    """Run one transaction with ``nft -f -``; NftError if the kernel refused it."""
    proc = _run(nft, ["-f", "-"], transaction, timeout)
    if proc.returncode != 0:
        first = (proc.stderr.strip() or f"exit {proc.returncode}").splitlines()[0]
        raise NftError(f"nft -f: {first}")


def has_table(table: str, *, nft: str = "nft", timeout: float = 10.0) -> bool:
    """Whether ``ip table`` exists (``nft list tables ip``: names only, cheap at any size)."""
    proc = _run(nft, ["list", "tables", "ip"], None, timeout)
    if proc.returncode != 0:
        raise NftError(f"nft list tables ip: {proc.stderr.strip()}")
    return f"table ip {table}" in proc.stdout.splitlines()


def list_table(table: str, *, nft: str = "nft", timeout: float = 60.0) -> dict[str, Any] | None:
    """The table as ``nft -j`` sees it (parsed JSON), or None if there is no such table."""
    proc = _run(nft, ["-j", "list", "table", "ip", table], None, timeout)
    if proc.returncode != 0:
        if "No such file" in proc.stderr:
            return None
        raise NftError(f"nft list table ip {table}: {proc.stderr.strip()}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data
