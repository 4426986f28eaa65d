"""The controllers' knobs: one settings dataclass, the flags of ``hakube controller-manager``.

Each field is also a ``HAKUBE_*`` variable and a config-file key (``hakube.settings``); the
names and defaults follow kube-controller-manager's where it has the same knob. A controller
reads its own fields from ``ctx.settings``; the manager passes the same object to every
controller of a term, so knobs that two controllers share (the Service CIDR, which both the
clusterIP allocator and the node IPAM keep apart) are set once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hakube.settings import setting

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_MASK = 24
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"


def _service_cidr(text: str) -> str:
    net = ipaddress.ip_network(text)
    if net.num_addresses < 4:
        raise ValueError(f"{text} is too small for Services")
    return str(net)


def _cidr(text: str) -> str:
    return str(ipaddress.ip_network(text))


@dataclass(frozen=True)
class ControllerSettings:
    """Knobs of the controllers (``hakube controller-manager``)."""

    concurrent_deployment_syncs: int = setting(5, minimum=1)
    """Deployments synced at once."""
    concurrent_replicaset_syncs: int = setting(5, minimum=1)
    """ReplicaSets synced at once."""
    replicaset_burst: int = setting(500, minimum=1)
    """Most pods one ReplicaSet sync creates or deletes."""
    concurrent_gc_syncs: int = setting(5, minimum=1)
    """Objects the garbage collector works on at once."""
    job_backoff_base: float = setting(10.0, minimum=0)
    """Seconds before re-creating a failed Job pod, doubling per failure."""
    job_backoff_max: float = setting(360.0, minimum=0)
    """Cap of the Job pod re-creation back-off, seconds."""
    hpa_sync_period: float = setting(15.0, minimum=0.01)
    """Seconds between HorizontalPodAutoscaler checks."""
    hpa_downscale_stabilization: float = setting(300.0, minimum=0)
    """Default scale-down stabilization window, seconds."""
    node_monitor_grace_period: float = setting(40.0, minimum=0.01)
    """Seconds without a lease renewal before a node is unreachable."""
    node_monitor_period: float = setting(1.0, minimum=0.01)
    """Seconds between looks at every node (only those a check could change are checked)."""
    default_unreachable_toleration_seconds: float = setting(300.0, minimum=0)
    """How long pods without a matching toleration stay on an unreachable node, seconds."""
    default_not_ready_toleration_seconds: float = setting(300.0, minimum=0)
    """How long pods without a matching toleration stay on a not-ready node, seconds."""
    node_eviction_rate: float = setting(10.0, minimum=0.001)
    """Pods evicted per second across the cluster."""
    terminated_pod_gc_threshold: int = setting(12500, minimum=0)
    """Terminated pods kept before the oldest are deleted (0: off)."""
    pod_gc_period: float = setting(20.0, minimum=0.01)
    """Seconds between runs of the pod garbage collector."""
    pod_gc_orphan_delay: float = setting(40.0, minimum=0)
    """Seconds a node must be gone before its pods are deleted."""
    token_cleaner_period: float = setting(60.0, minimum=0.01)
    """Seconds between deletions of expired bootstrap-token Secrets."""
    service_cluster_ip_range: str = setting(DEFAULT_SERVICE_CIDR, parse=_service_cidr)
    """CIDR Service clusterIPs come from."""
    allocate_node_cidrs: bool = setting(True, valued=True)
    """Give every Node a spec.podCIDR from --cluster-cidr (--allocate-node-cidrs=false: off)."""
    cluster_cidr: str = setting(DEFAULT_CLUSTER_CIDR, parse=_cidr)
    """The pods' addresses, cut into per-node ranges."""
    node_cidr_mask_size: int = DEFAULT_MASK
    """Prefix length of each node's range."""

    def validate(self) -> None:
        from hakube.controllers.nodeipam import plan  # its rules, stated once there

        plan(self.cluster_cidr, self.node_cidr_mask_size, self.service_cluster_ip_range)
