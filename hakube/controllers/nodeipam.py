"""Pod address ranges: every Node gets a ``spec.podCIDR`` from the cluster CIDR.

The cluster CIDR (``--cluster-cidr``, default 10.244.0.0/16) is cut into ranges of
``--node-cidr-mask-size`` bits (default /24: 256 nodes of up to 254 pods); each Node without a
podCIDR gets the lowest free one. The node agent builds its pod network from it and the other
nodes route it to the node's address (hakube.agent.routes), so two nodes must never hold the
same range -- not when two Nodes register at once, not when two controller-managers overlap for
a moment around a failover, not when one dies between choosing a range and writing it.

The allocation is therefore a compare-and-swap on one record in the store, the ConfigMap
``kube-system/hakube-node-pod-cidrs`` (data: CIDR -> ``node/uid``, the key written
``10.244.1.0_24`` since ConfigMap keys cannot hold a slash), not memory:

1. read the record, take the range already recorded for this Node's uid (an earlier attempt)
   or the lowest free one, write the record back with its resourceVersion (a concurrent writer
   makes this fail with Conflict, and the sync retries with a fresh read);
2. only then set ``spec.podCIDR``/``podCIDRs`` on the Node, again conditional on its
   resourceVersion.

A Node that came with a podCIDR of its own (``hakube agent --pod-cidr``) has it recorded, and
until then the allocator counts the ranges of the Nodes it knows as taken, so it never hands it
out (a Warning event if another Node holds an overlapping range).
Entries whose Node is gone -- deleted, or replaced by a new object of the same name -- are
released after a fresh list of Nodes shows no owner with that uid; that runs whenever a Node is
deleted and at the start of every term. A full cluster CIDR is a Warning event
(``CIDRNotAvailable``) on the Node and a log line; the Node waits and is retried whenever a
range is released.

``--allocate-node-cidrs`` is on by default (Kubernetes has it off and leaves ranges to a
network plugin): hakube's own pod network needs the ranges, and a cluster should network its
pods out of the box. ``--allocate-node-cidrs=false`` turns the controller into a no-op.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from typing import Any

from hakube.api.v1 import core_pb2
from hakube.client import errors
from hakube.controllers import records
from hakube.controllers.base import Controller, key_of
from hakube.controllers.manager import register

log = logging.getLogger("hakube.controllers.nodeipam")

RECORD_NS = "kube-system"
RECORD_NAME = "hakube-node-pod-cidrs"
_RECORD_KEY = ("", "\0record")  # a queue key no Node can have
_FULL_RETRY = 30.0
"""Seconds after which a Node that found the range full is tried again (also sooner: every
release queues the Nodes still waiting)."""

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def plan(cluster_cidr: str, mask: int, service_cidr: str) -> tuple[Net, int]:
    """The validated (cluster network, mask size); ValueError naming the flag and the rule."""
    try:
        net = ipaddress.ip_network(cluster_cidr)
    except ValueError as e:
        raise ValueError(f"--cluster-cidr {cluster_cidr!r}: {e}") from None
    if not net.prefixlen <= mask <= net.max_prefixlen - 2:
        raise ValueError(
            f"--node-cidr-mask-size {mask}: must lie between the cluster CIDR's prefix "
            f"({net.prefixlen}) and {net.max_prefixlen - 2} (a range needs room for pods)"
        )
    svc = ipaddress.ip_network(service_cidr)
    if svc.version == net.version and net.overlaps(svc):  # type: ignore[arg-type]
        raise ValueError(
            f"--cluster-cidr {net} overlaps the Service CIDR {svc} "
            "(--service-cluster-ip-range): pod and Service addresses must be distinct"
        )
    return net, mask


def _key(cidr: str) -> str:
    """The record's key for ``cidr`` (ConfigMap keys allow neither "/" nor ":")."""
    return cidr.replace("/", "_").replace(":", "-")


def _unkey(key: str) -> str:
    return key.replace("_", "/").replace("-", ":")


def _owner_uid(value: str) -> str:
    return value.rsplit("/", 1)[-1]


def _entry(node: core_pb2.Node) -> str:
    return f"{node.metadata.name}/{node.metadata.uid}"


def lowest_free(net: Net, mask: int, taken: list[Net]) -> Net | None:
    """The lowest /``mask`` of ``net`` that overlaps none of ``taken``; None when full."""
    same = {t for t in taken if t.prefixlen == mask}
    other = [t for t in taken if t.prefixlen != mask and t.overlaps(net)]  # type: ignore[arg-type]
    for sub in net.subnets(new_prefix=mask):
        if sub in same or any(sub.overlaps(t) for t in other):  # type: ignore[arg-type]
            continue
        return sub
    return None


@register
class NodeIpamController(Controller):
    name = "nodeipam"

    def setup(self) -> None:
        self.enabled = self.ctx.settings.allocate_node_cidrs
        self.network, self.mask = plan(
            self.ctx.settings.cluster_cidr,
            self.ctx.settings.node_cidr_mask_size,
            self.ctx.settings.service_cluster_ip_range,
        )
        if not self.enabled:
            log.info("--allocate-node-cidrs=false: Nodes get no podCIDR from hakube")
            return
        self.nodes = self.ctx.informers.get(core_pb2.Node)
        self.records = self.ctx.informers.get(core_pb2.ConfigMap)
        self._full_version = ""
        """resourceVersion of the record when the cluster CIDR was last found full; while the
        cached record still has it, nothing was released and a waiting Node is not re-checked
        (744 of 1,000 nodes waiting, each re-checked every 30 s, kept a core busy)."""
        self.nodes.add_handlers(
            on_add=self.enqueue,
            on_update=self._node_updated,
            on_delete=lambda node: self.queue.add(_RECORD_KEY),
        )
        self.queue.add(_RECORD_KEY)  # release what earlier terms left behind

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        """Queue a Node whose range may need work: it has none, or it changed. Other updates
        (status heartbeats, taints: 17 a second from 1,000 nodes) are not queued -- each sync
        reads the whole record, and that kept the controller-manager busy at rest."""
        if not new.spec.pod_cidr or new.spec.pod_cidr != old.spec.pod_cidr:
            self.enqueue(new)

    def sync(self, key: Any) -> None:
        if key == _RECORD_KEY:
            if self._release_unowned():
                self._full_version = ""  # the cache may not show the release yet
                for node in self.nodes.list():  # a range came free: Nodes waiting may have it
                    if not node.spec.pod_cidr:
                        self.enqueue(node)
            return
        node = self.nodes.get(key[1], key[0])
        if node is None or node.metadata.deletion_timestamp:
            return
        if node.spec.pod_cidr:
            self._record_given(node)
        else:
            self._allocate(node)

    # -- the record ---------------------------------------------------------------------------

    def _record(self) -> core_pb2.ConfigMap:
        return records.get_or_create(self.client, RECORD_NS, RECORD_NAME)

    def _still_full(self) -> bool:
        if not self._full_version:
            return False
        cached = self.records.get(RECORD_NAME, RECORD_NS)
        return cached is not None and cached.metadata.resource_version == self._full_version

    def _allocate(self, node: core_pb2.Node) -> None:
        if self._still_full():
            self.queue.add_after(key_of(node), _FULL_RETRY)
            return
        record = self._record()
        uid = node.metadata.uid
        mine = [_unkey(k) for k, v in record.data.items() if _owner_uid(v) == uid]
        if mine:
            cidr = mine[0]
        else:
            # Ranges Nodes brought with them count as taken even before their entry is
            # recorded (their own sync may come after this one, e.g. right after a start).
            given = [n.spec.pod_cidr for n in self.nodes.list() if n.metadata.uid != uid]
            taken = _networks(record.data) + _networks(_key(c) for c in given if c)
            free = lowest_free(self.network, self.mask, taken)
            if free is None:
                msg = (
                    f"no free /{self.mask} left in the cluster CIDR {self.network} for node "
                    f"{node.metadata.name}; delete unused Nodes or widen --cluster-cidr"
                )
                log.warning("%s", msg)
                self.events.warning(node, "CIDRNotAvailable", msg)
                self._full_version = record.metadata.resource_version
                self.queue.add_after(key_of(node), _FULL_RETRY)
                return
            cidr = str(free)
            record.data[_key(cidr)] = _entry(node)
            self.client.configmaps.update(record)  # CAS: Conflict -> retry with a fresh read
        try:
            fresh = self.client.nodes.get(node.metadata.name)
        except errors.NotFound:
            self.queue.add(_RECORD_KEY)
            return
        if fresh.metadata.uid != uid or fresh.spec.pod_cidr:
            self.queue.add(_RECORD_KEY)  # gone, or given one meanwhile: ours may be released
            return
        fresh.spec.pod_cidr = cidr
        del fresh.spec.pod_cidrs[:]
        fresh.spec.pod_cidrs.append(cidr)
        self.client.nodes.update(fresh)  # conditional on the resourceVersion just read
        log.info("node %s: podCIDR %s", node.metadata.name, cidr)
        self.events.normal(node, "CIDRAssignmentSucceeded", f"podCIDR {cidr} assigned")

    def _record_given(self, node: core_pb2.Node) -> None:
        """Keep a range the Node came with (or got from us) in the record."""
        try:
            net = ipaddress.ip_network(node.spec.pod_cidr)
        except ValueError:
            return
        if net.version != self.network.version or not net.overlaps(self.network):  # type: ignore[arg-type]
            return  # outside the cluster CIDR: it cannot collide with what we hand out
        record = self._record()
        cidr = str(net)
        if _owner_uid(record.data.get(_key(cidr), "")) == node.metadata.uid:
            return
        clash = [
            (_unkey(k), v)
            for k, v in record.data.items()
            if _owner_uid(v) != node.metadata.uid and _overlap(_unkey(k), net)
        ]
        if clash:
            self.events.warning(
                node,
                "CIDRNotAvailable",
                f"podCIDR {cidr} overlaps {clash[0][0]}, already held by node "
                f"{clash[0][1].rsplit('/', 1)[0]}",
            )
            return
        record.data[_key(cidr)] = _entry(node)
        self.client.configmaps.update(record)

    def _release_unowned(self) -> bool:
        """Drop entries whose Node is gone or holds another range; True if any went."""
        record = self._record()
        live = {n.metadata.uid: n.spec.pod_cidr for n in self.client.nodes.list().items}
        stale = [
            k
            for k, v in record.data.items()
            if _owner_uid(v) not in live or live[_owner_uid(v)] not in ("", _unkey(k))
        ]
        if not stale:
            return False
        for k in stale:
            log.info("podCIDR %s released (node %s)", _unkey(k), record.data[k].rsplit("/", 1)[0])
            del record.data[k]
        self.client.configmaps.update(record)
        return True


def _networks(data: Any) -> list[Net]:
    return [n for n in map(_parse_key, data) if n is not None]


@functools.lru_cache(maxsize=16384)
def _parse_key(key: str) -> Net | None:
    """A record key as a network (None if malformed), parsed once: every allocation reads
    every entry, and parsing them anew made 1,000 registrations quadratic in parse calls."""
    try:
        return ipaddress.ip_network(_unkey(key))
    except ValueError:
        return None


def _overlap(cidr: str, net: Net) -> bool:
    try:
        other = ipaddress.ip_network(cidr)
    except ValueError:
        return False
    return other.version == net.version and other.overlaps(net)  # type: ignore[arg-type]
