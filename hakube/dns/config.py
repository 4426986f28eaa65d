"""``hakube dns`` settings: one dataclass, documented defaults, one validator."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hakube.httpendpoint import is_loopback
from hakube.settings import setting

DEFAULT_LISTEN = "127.0.0.1:53"


def parse_upstream(text: str) -> tuple[str, ...]:
    """``--upstream``: ``IP[:PORT],...``; ``none`` (or nothing) is no resolver at all."""
    words = [u.strip() for u in text.split(",") if u.strip()]
    return () if words in ([], ["none"]) else tuple(words)


@dataclass(frozen=True)
class DnsSettings:
    """How one ``hakube dns`` instance runs."""

    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    """HOST:PORT addresses served on UDP and TCP. Loopback only by default: DNS cannot do TLS
    for pods, so an address pods reach is the operator's explicit choice (``--listen``)."""
    cluster_domain: str = "cluster.local"
    """The cluster zone (Kubernetes' default)."""
    upstream: tuple[str, ...] | None = setting(None, parse=parse_upstream, metavar="IP[:PORT],...")
    """Resolvers (IP or IP:PORT, comma-separated) for names outside the cluster zone; unset:
    the nameserver lines of --resolv-conf; 'none': no resolvers (such names get SERVFAIL)."""
    resolv_conf: str = "/etc/resolv.conf"
    """The node's resolv.conf, read for resolvers when --upstream is unset."""
    forward_timeout: float = 1.5
    """Seconds for all upstream attempts of one query together; then SERVFAIL (under 2 s, so
    a stub resolver's first retry is not wasted on us)."""
    ttl: int = setting(5, minimum=0, maximum=3600)
    """TTL of cluster answers and of negative answers (the SOA minimum), seconds: short, as
    Services and endpoints change; answers are precomputed, so a short TTL costs no work."""
    cache_size: int = setting(10000, minimum=0)
    """Answers kept ready (wire bytes per distinct query); the cache is emptied whenever the
    zone changes, and bounded so that a flood of distinct names cannot grow it."""
    max_forwards: int = 1000
    """Forwarded queries in flight at once; beyond it a query gets SERVFAIL at once."""
    max_tcp_clients: int = 256
    """TCP connections served at once."""
    tcp_idle: float = 10.0
    """Seconds after which an idle TCP client is closed."""

    def validate(self) -> None:
        """ValueError naming the flag and the rule it breaks."""
        if not self.listen:
            raise ValueError("--listen: give at least one HOST:PORT")
        for addr in self.listen:
            split_hostport(addr, "--listen")
        for addr in self.upstream or ():
            split_hostport(addr, "--upstream", default_port=53)
        if not 0 < self.forward_timeout <= 30:
            raise ValueError(f"--forward-timeout {self.forward_timeout}: must be in (0, 30]")
        labels = self.cluster_domain.strip(".").split(".")
        if not all(0 < len(x) <= 63 for x in labels):
            raise ValueError(f"--cluster-domain {self.cluster_domain!r}: not a domain name")

    def loopback_only(self) -> bool:
        return all(is_loopback(split_hostport(a, "--listen")[0]) for a in self.listen)


def split_hostport(addr: str, flag: str, *, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` / ``[V6]:PORT`` (or a bare IP when ``default_port``) as (ip, port);
    ValueError naming ``flag``."""
    host, port = addr, default_port
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:]) if rest[1:].isdigit() else -1
    elif addr.count(":") == 1:
        host, _, p = addr.partition(":")
        port = int(p) if p.isdigit() else -1
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{flag} {addr!r}: the host must be an IP address") from None
    if port is None or not 0 <= port <= 65535:
        raise ValueError(f"{flag} {addr!r}: expected HOST:PORT with a port 0..65535")
    return host, port
