"""A pod's DNS settings (``dnsPolicy``, ``dnsConfig``, ``hostAliases``): the rules, and the
resolv.conf they make (the agent writes hostAliases into the pod's /etc/hosts:
``hakube.agent.hosts``).

Kubernetes' rules and limits: ``dnsPolicy`` is one of ``ClusterFirst`` (the default),
``ClusterFirstWithHostNet``, ``Default`` or ``None``; ``None`` needs a ``dnsConfig`` with at
least one nameserver; at most 3 nameservers (the C library reads no more), 32 search domains and
2048 characters of search list; every nameserver and hostAlias IP is an IP address, every
hostAlias hostname a DNS name.

What a pod gets (``resolver``, used by the node agent, which hands it to the runtime as the
CRI ``DNSConfig``):

- ``ClusterFirst``: the cluster DNS (``--cluster-dns``), search ``<ns>.svc.<domain>
  svc.<domain> <domain>`` and ``ndots:5``; a host-network pod falls back to ``Default`` (it
  sees the node's network, where the cluster DNS address may not route), unless the policy is
  ``ClusterFirstWithHostNet``;
- ``Default``: the node's resolv.conf (the agent's ``--resolv-conf``);
- ``None``: only ``dnsConfig``.

``dnsConfig`` is added to the first two: its nameservers and searches after the policy's (no
duplicates, cut to the limits), its options replacing the policy's option of the same name.
The API server refuses a spec that breaks the rules (``hakube.apiserver.validation``); the
agent applies the limits again, since the node's own resolv.conf can exceed them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from hakube.api.resolvconf import ResolvConf
from hakube.api.v1 import pod_pb2

POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
CLUSTER_NDOTS = 5
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def problems(spec: pod_pb2.PodSpec, path: str) -> list[tuple[str, str]]:
    """(field path, why) for every rule ``spec``'s DNS settings break."""
    if spec.dns_policy in POLICIES and spec.dns_policy != "None":
        if not spec.HasField("dns_config") and not spec.host_aliases:
            return []  # nothing more to check (most pods)
    return list(_problems(spec, path))


def _problems(spec: pod_pb2.PodSpec, path: str) -> Iterator[tuple[str, str]]:
    if spec.dns_policy not in POLICIES:
        yield (
            f"{path}.dnsPolicy",
            f'unsupported value "{spec.dns_policy}": one of ' + ", ".join(POLICIES),
        )
    cfg = spec.dns_config
    cp = f"{path}.dnsConfig"
    if spec.dns_policy == "None":
        if not spec.HasField("dns_config"):
            yield cp, 'required when dnsPolicy is "None"'
        elif not cfg.nameservers:
            yield f"{cp}.nameservers", 'required: at least one when dnsPolicy is "None"'
    if len(cfg.nameservers) > MAX_NAMESERVERS:
        yield f"{cp}.nameservers", f"at most {MAX_NAMESERVERS} nameservers"
    for i, ns in enumerate(cfg.nameservers):
        if not _is_ip(ns):
            yield f"{cp}.nameservers[{i}]", f'"{ns}" is not an IP address'
    if len(cfg.searches) > MAX_SEARCHES:
        yield f"{cp}.searches", f"at most {MAX_SEARCHES} search domains"
    if len(" ".join(cfg.searches)) > MAX_SEARCH_CHARS:
        yield f"{cp}.searches", f"at most {MAX_SEARCH_CHARS} characters in all"
    for i, s in enumerate(cfg.searches):
        if not _SUBDOMAIN.match(s.rstrip(".")) or len(s) > 253:
            yield f"{cp}.searches[{i}]", f'"{s}" is not a lower-case DNS domain name'
    for i, o in enumerate(cfg.options):
        if not o.name:
            yield f"{cp}.options[{i}].name", "required value"
    for i, a in enumerate(spec.host_aliases):
        ap = f"{path}.hostAliases[{i}]"
        if not _is_ip(a.ip):
            yield f"{ap}.ip", f'"{a.ip}" is not an IP address'
        if not a.hostnames:
            yield f"{ap}.hostnames", "required value"
        for j, h in enumerate(a.hostnames):
            if not _SUBDOMAIN.match(h) or len(h) > 253:
                yield f"{ap}.hostnames[{j}]", f'"{h}" is not a lower-case DNS name'


@dataclass(frozen=True)
class ClusterDNS:
    """The node's view of cluster DNS (the agent's flags)."""

    servers: tuple[str, ...] = ("10.96.0.10",)
    """The kube-dns Service's ClusterIP(s); empty: no cluster DNS, ClusterFirst acts as
    Default (Kubernetes' kubelet without --cluster-dns)."""
    domain: str = "cluster.local"


@dataclass
class Resolver:
    """What a pod's resolv.conf holds."""

    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    """``name`` or ``name:value``."""


def resolver(pod: pod_pb2.Pod, cluster: ClusterDNS, node: ResolvConf) -> Resolver:
    """The resolv.conf of ``pod`` (see the module docstring)."""
    spec = pod.spec
    policy = spec.dns_policy or "ClusterFirst"
    if policy == "ClusterFirst" and spec.host_network:
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster.servers:
        policy = "Default"
    out = Resolver()
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        d = cluster.domain.strip(".")
        out.nameservers = list(cluster.servers)
        out.searches = [f"{pod.metadata.namespace}.svc.{d}", f"svc.{d}", d]
        out.options = [f"ndots:{CLUSTER_NDOTS}"]
    elif policy == "Default":
        out.nameservers = list(node.nameservers)
        out.searches = list(node.searches)
        out.options = list(node.options)
    cfg = spec.dns_config
    out.nameservers = list(dict.fromkeys([*out.nameservers, *cfg.nameservers]))[:MAX_NAMESERVERS]
    searches = list(dict.fromkeys([*out.searches, *(s.rstrip(".") for s in cfg.searches)]))
    while len(searches) > MAX_SEARCHES or len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches.pop()
    out.searches = searches
    options = {o.split(":", 1)[0]: o for o in out.options}
    for o in cfg.options:
        options[o.name] = f"{o.name}:{o.value}" if o.HasField("value") else o.name
    out.options = list(options.values())
    return out
