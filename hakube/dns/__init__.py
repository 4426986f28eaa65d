"""Cluster DNS: ``hakube dns`` answers the cluster zone from Services and Endpoints and
forwards other names to the node's resolvers (docs/networking.md, "Cluster DNS")."""

from hakube.dns.component import ClusterDns
from hakube.dns.config import DnsSettings
from hakube.dns.zone import Zone

__all__ = ["ClusterDns", "DnsSettings", "Zone"]
