"""What the proxy programs: Services and Endpoints turned into nftables objects.

Pure functions, no kernel: :func:`service_ports` reads one Service and its Endpoints,
:func:`build` turns every service port into the chains, sets and map elements of the proxy's
table (a :class:`Ruleset`), and :mod:`hakube.proxy.nft` renders a ruleset as one ``nft -f``
transaction -- the whole table, or the difference between two rulesets.

The layout follows kube-proxy's nftables mode (see docs/networking.md, "Service proxy"):

* four verdict maps, looked up by fixed base chains: ``service-ips`` (ClusterIP . proto . port
  -> ``goto svc-…``) and ``service-nodeports`` (proto . nodePort -> ``goto ext-…``) in the NAT
  hooks; ``no-endpoint-services`` / ``no-endpoint-nodeports`` (-> ``goto reject-chain``) in the
  filter hooks, so a Service without a ready endpoint refuses connections at once;
* per service port a chain ``svc-<hash>-<ns>/<name>/<proto>/<port name>`` that DNATs to one
  ready endpoint picked at random (``dnat ip to numgen random mod N map { i : ip . port }``),
  and for a NodePort an ``ext-…`` chain that marks the packet for masquerade first;
* the set ``hairpin-endpoints`` (``ip . ip`` of every endpoint): a packet whose source and
  destination are the same endpoint after DNAT (a pod reaching itself through its Service) is
  masqueraded, so the reply comes back through the node;
* only for ``sessionAffinity: ClientIP``, kube-proxy's per-endpoint chains
  ``ep-<hash>-…__<ip>/<port>`` with a set of recent clients each.

Unlike kube-proxy, endpoints get no chain of their own unless affinity needs one: ``nft`` reads
every chain of the table before it applies even a one-rule transaction, so 10,000 endpoint
chains would make each small sync several times slower (see docs/benchmarks.md).

A ruleset only holds what varies with the Services (the per-service chains, their sets and the
map elements); the fixed skeleton is in :mod:`hakube.proxy.nft`. Generating is cached per
:class:`ServicePort` value (frozen, hashable), so a sync after one Endpoints change costs one
fragment, not a thousand.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from hakube.api.v1 import core_pb2

MASQ_CHAIN = "mark-for-masquerade"
REJECT_CHAIN = "reject-chain"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
HAIRPIN = "hairpin-endpoints"
MAPS = (SERVICE_IPS, SERVICE_NODEPORTS, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS, HAIRPIN)
"""The named maps (and the one named set, ``HAIRPIN``, whose elements have no value)."""

AFFINITY_TIMEOUT = 10800
"""Seconds a ClientIP affinity entry lives after its last packet: Kubernetes' default
``sessionAffinityConfig.clientIP.timeoutSeconds`` (the field is not in hakube's API)."""

_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with what the proxy needs of it and of its ready endpoints."""

    namespace: str
    name: str
    port_name: str
    protocol: str
    """nft's name: tcp, udp or sctp."""
    cluster_ip: str
    port: int
    node_port: int = 0
    affinity: bool = False
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name}"


def _ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def service_ports(svc: core_pb2.Service, ep: core_pb2.Endpoints | None) -> list[ServicePort]:
    """The service ports of ``svc`` the proxy programs, each with its ready endpoints.

    Headless and ExternalName Services, and those without a (valid IPv4) ClusterIP yet, have
    none. An endpoint serves a service port when its subset has a port of the same name and
    protocol (the Endpoints controller, and anyone writing Endpoints by hand, name them so);
    only ``addresses`` count -- ``notReadyAddresses`` get no traffic.
    """
    spec = svc.spec
    if spec.type == "ExternalName" or not _ipv4(spec.cluster_ip):
        return []
    out = []
    for sp in spec.ports:
        proto = _PROTOCOLS.get(sp.protocol or "TCP")
        if proto is None:
            continue
        eps: set[Endpoint] = set()
        for subset in ep.subsets if ep is not None else ():
            for p in subset.ports:
                if p.name == sp.name and (p.protocol or "TCP") == (sp.protocol or "TCP"):
                    eps.update(Endpoint(a.ip, p.port) for a in subset.addresses if _ipv4(a.ip))
        out.append(
            ServicePort(
                namespace=svc.metadata.namespace,
                name=svc.metadata.name,
                port_name=sp.name,
                protocol=proto,
                cluster_ip=spec.cluster_ip,
                port=sp.port,
                node_port=sp.node_port if spec.type in ("NodePort", "LoadBalancer") else 0,
                affinity=spec.session_affinity == "ClientIP",
                endpoints=tuple(sorted(eps)),
            )
        )
    return out


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest)[:8].decode().lower()


def svc_chain(sp: ServicePort) -> str:
    return f"svc-{_hash(sp.key)}-{sp.key}"


def ext_chain(sp: ServicePort) -> str:
    return f"ext-{_hash(sp.key)}-{sp.key}"


def ep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return f"ep-{_hash(f'{sp.key}/{ep.ip}/{ep.port}')}-{sp.key}__{ep.ip}/{ep.port}"


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    return f"aff-{_hash(f'{sp.key}/{ep.ip}/{ep.port}')}"


AFFINITY_SET_SPEC = f"type ipv4_addr ; flags dynamic,timeout ; timeout {AFFINITY_TIMEOUT}s ;"


@dataclass
class Ruleset:
    """The variable part of the table: per-service chains (name -> rules, in order), dynamic
    sets (name -> declaration) and the elements of the four maps (map -> key -> verdict)."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    elements: dict[str, dict[str, str]] = field(default_factory=lambda: {m: {} for m in MAPS})
    service_ports: int = 0
    endpoints: int = 0
    backends: set[str] = field(default_factory=set)
    """Every endpoint address a service port translates to (the fast path's exceptions)."""

    def rule_count(self) -> int:
        return sum(len(r) for r in self.chains.values())


@dataclass(frozen=True)
class Fragment:
    """What one service port contributes to a ruleset."""

    chains: tuple[tuple[str, tuple[str, ...]], ...]
    sets: tuple[str, ...]
    elements: tuple[tuple[str, str, str], ...]  # (map, key, verdict)


def fragment(sp: ServicePort, *, cluster_cidr: str = "") -> Fragment:
    """The chains, sets and map elements of one service port."""
    svc = svc_chain(sp)
    chains: list[tuple[str, tuple[str, ...]]] = []
    sets: list[str] = []
    rules: list[str] = []
    if cluster_cidr:
        # Traffic to the ClusterIP from outside the pod network (the node itself, other hosts)
        # is masqueraded, so that the endpoint's reply comes back through this node.
        rules.append(
            f"ip daddr {sp.cluster_ip} {sp.protocol} dport {sp.port} "
            f"ip saddr != {cluster_cidr} jump {MASQ_CHAIN}"
        )
    targets = []
    if sp.affinity:
        for ep in sp.endpoints:
            name, aff = ep_chain(sp, ep), affinity_set(sp, ep)
            targets.append(name)
            sets.append(aff)
            rules.append(f"ip saddr @{aff} goto {name}")
            ep_rules = (
                f"update @{aff} {{ ip saddr }}",
                f"meta l4proto {sp.protocol} dnat to {ep.ip}:{ep.port}",
            )
            chains.append((name, ep_rules))
        if targets:
            vmap = ", ".join(f"{i} : goto {t}" for i, t in enumerate(targets))
            rules.append(f"numgen random mod {len(targets)} vmap {{ {vmap} }}")
    elif sp.endpoints:
        targets = [f"{ep.ip} . {ep.port}" for ep in sp.endpoints]
        dmap = ", ".join(f"{i} : {t}" for i, t in enumerate(targets))
        rules.append(
            f"meta l4proto {sp.protocol} dnat ip to numgen random mod {len(targets)} "
            f"map {{ {dmap} }}"
        )
    chains.insert(0, (svc, tuple(rules)))
    elements = [(HAIRPIN, f"{ep.ip} . {ep.ip}", "") for ep in sp.endpoints]
    ip_key = f"{sp.cluster_ip} . {sp.protocol} . {sp.port}"
    if targets:
        elements.append((SERVICE_IPS, ip_key, f"goto {svc}"))
    else:
        elements.append((NO_ENDPOINT_SERVICES, ip_key, f"goto {REJECT_CHAIN}"))
    if sp.node_port:
        np_key = f"{sp.protocol} . {sp.node_port}"
        ext = ext_chain(sp)
        chains.append((ext, (f"jump {MASQ_CHAIN}", f"goto {svc}")))
        if targets:
            elements.append((SERVICE_NODEPORTS, np_key, f"goto {ext}"))
        else:
            elements.append((NO_ENDPOINT_NODEPORTS, np_key, f"goto {REJECT_CHAIN}"))
    return Fragment(tuple(chains), tuple(sets), tuple(elements))


class Builder:
    """Builds rulesets, keeping each service port's fragment until that port changes."""

    def __init__(self, *, cluster_cidr: str = "") -> None:
        self.cluster_cidr = cluster_cidr
        self._cache: dict[ServicePort, Fragment] = {}

    def build(self, ports: Iterable[ServicePort]) -> Ruleset:
        """The ruleset for ``ports``. Two service ports claiming one ClusterIP/port or one
        nodePort (which validation prevents, short of a race): the first by key wins."""
        out = Ruleset()
        cache: dict[ServicePort, Fragment] = {}
        for sp in sorted(ports, key=lambda p: p.key):
            frag = self._cache.get(sp) or fragment(sp, cluster_cidr=self.cluster_cidr)
            cache[sp] = frag
            if any(key in out.elements[m] for m, key, _ in frag.elements if m != HAIRPIN):
                continue
            out.chains.update(frag.chains)
            out.sets.update((s, AFFINITY_SET_SPEC) for s in frag.sets)
            for m, key, verdict in frag.elements:
                out.elements[m][key] = verdict
            out.service_ports += 1
            out.endpoints += len(sp.endpoints)
            out.backends.update(ep.ip for ep in sp.endpoints)
        self._cache = cache
        return out


def build(ports: Iterable[ServicePort], *, cluster_cidr: str = "") -> Ruleset:
    return Builder(cluster_cidr=cluster_cidr).build(ports)
