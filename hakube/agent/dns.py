"""A pod's resolv.conf as the CRI ``DNSConfig`` of its sandbox (containerd writes the file).

The rules are ``hakube.api.poddns``; this module adds the node's side: the agent's
``--cluster-dns``/``--cluster-domain`` and the node's resolv.conf, read at each sandbox start so
that a change on the node reaches new pods without an agent restart.
"""

from __future__ import annotations

from hakube.agent.config import AgentSettings
from hakube.api import poddns, resolvconf
from hakube.api.v1 import pod_pb2
from hakube.cri.v1 import api_pb2 as pb


def dns_config(pod: pod_pb2.Pod, s: AgentSettings) -> pb.DNSConfig:
    r = poddns.resolver(
        pod,
        poddns.ClusterDNS(s.cluster_dns, s.cluster_domain),
        resolvconf.read(s.resolv_conf),
    )
    return pb.DNSConfig(servers=r.nameservers, searches=r.searches, options=r.options)
