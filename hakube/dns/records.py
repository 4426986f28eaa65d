"""The records of the cluster zone, computed from one Service and its Endpoints.

What a Service publishes follows the Kubernetes DNS-based service discovery specification
(``<zone>`` is the cluster domain, ``cluster.local`` by default):

- a Service with a ClusterIP: ``<svc>.<ns>.svc.<zone>`` A (AAAA for an IPv6 address) to each
  ClusterIP, PTR from each ClusterIP back to that name, and for each *named* port an SRV record
  ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` -> ``0 100 <port> <svc>.<ns>.svc.<zone>``;
- a headless Service (``clusterIP: None``): the same name to each *ready* endpoint address (the
  Endpoints' ``addresses``; not-ready ones are never published), ``<host>.<svc>.<ns>.svc.<zone>``
  to each endpoint, where ``<host>`` is the endpoint's ``hostname`` (a StatefulSet pod's
  ``spec.hostname``, which the Endpoints controller copies when ``spec.subdomain`` names the
  Service) or else the address with dashes (``10-244-1-5``), PTR from each endpoint address to
  its ``<host>`` name, and SRV per named endpoint port to each ``<host>`` name;
- an ExternalName Service: a CNAME to ``spec.externalName``.

A record is a plain triple ``(owner name, type, rdata text)``; names are lower case and absolute
(trailing dot). Nothing here knows the wire format: ``hakube.dns.zone`` turns the triples into
the DNS library's record sets.
"""

from __future__ import annotations

import ipaddress

from hakube.api.v1 import core_pb2

A, AAAA, CNAME, PTR, SRV = "A", "AAAA", "CNAME", "PTR", "SRV"

Record = tuple[str, str, str]
"""(owner name, record type, rdata in presentation format)."""


def service_name(name: str, namespace: str, domain: str) -> str:
    return f"{name}.{namespace}.svc.{domain}.".lower()


def reverse_name(ip: str) -> str:
    """The in-addr.arpa / ip6.arpa name of ``ip`` (absolute)."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def host_label(addr: core_pb2.EndpointAddress) -> str:
    """The endpoint's name inside its Service: its hostname, else its address with dashes."""
    if addr.hostname:
        return addr.hostname.lower()
    return addr.ip.replace(".", "-").replace(":", "-")


def _address_type(ip: str) -> str | None:
    try:
        return AAAA if ipaddress.ip_address(ip).version == 6 else A
    except ValueError:
        return None


def is_headless(svc: core_pb2.Service) -> bool:
    return svc.spec.cluster_ip == "None"


def _cluster_ips(svc: core_pb2.Service) -> list[str]:
    ips = list(svc.spec.cluster_ips) or ([svc.spec.cluster_ip] if svc.spec.cluster_ip else [])
    return [ip for ip in dict.fromkeys(ips) if _address_type(ip)]


def _srv_owner(port_name: str, protocol: str, name: str) -> str:
    return f"_{port_name.lower()}._{(protocol or 'TCP').lower()}.{name}"


def service_records(
    svc: core_pb2.Service, eps: core_pb2.Endpoints | None, domain: str
) -> list[Record]:
    """Every record ``svc`` (with its Endpoints ``eps``, if any) publishes."""
    name = service_name(svc.metadata.name, svc.metadata.namespace, domain)
    if svc.spec.type == "ExternalName":
        target = svc.spec.external_name.rstrip(".").lower()
        return [(name, CNAME, target + ".")] if target else []
    out: list[Record] = []
    if not is_headless(svc):
        for ip in _cluster_ips(svc):
            out.append((name, _address_type(ip) or A, ip))
            out.append((reverse_name(ip), PTR, name))
        if _cluster_ips(svc):
            for p in svc.spec.ports:
                if p.name:
                    out.append(
                        (_srv_owner(p.name, p.protocol, name), SRV, f"0 100 {p.port} {name}")
                    )
        return out
    for subset in eps.subsets if eps is not None else ():
        for addr in subset.addresses:
            rtype = _address_type(addr.ip)
            if rtype is None:
                continue
            host = f"{host_label(addr)}.{name}"
            out.append((name, rtype, addr.ip))
            out.append((host, rtype, addr.ip))
            out.append((reverse_name(addr.ip), PTR, host))
            for ep in subset.ports:
                if ep.name:
                    out.append(
                        (_srv_owner(ep.name, ep.protocol, name), SRV, f"0 100 {ep.port} {host}")
                    )
    return out


def pod_address(labels: list[str]) -> str | None:
    """``a-b-c-d`` (the first label of ``<a-b-c-d>.<ns>.pod.<zone>``) as an IPv4 address, or
    None. As Kubernetes' "pods insecure" mode: any well-formed address is answered, without
    checking that a pod has it (no Pods informer, no extra API rights)."""
    if len(labels) != 3 or labels[2] != "pod":
        return None
    try:
        ip = ipaddress.IPv4Address(labels[0].replace("-", "."))
    except ValueError:
        return None
    return str(ip)
