"""ClusterIP allocation: every Service (but headless and ExternalName ones) gets an address.

The service CIDR (``--service-cluster-ip-range``, default 10.96.0.0/12) is shared by all
Services, so two Services must never get the same address -- not even when two
controller-managers overlap for a moment around a failover, or when one dies between choosing
an address and writing it. Therefore the allocation itself is a compare-and-swap on one record,
the ConfigMap ``kube-system/hakube-service-cluster-ips`` (data: address -> ``ns/name/uid``),
as Kubernetes keeps its allocation bitmap in one etcd key:

1. read the record, choose the lowest free address (or the one already recorded for this
   Service's uid, left by an earlier attempt), write the record back with its resourceVersion;
   a concurrent writer makes this fail with Conflict and the sync retries;
2. only then set ``spec.clusterIP``/``clusterIPs`` on the Service (again with CAS).

A Service created with a ``clusterIP`` of its own has it recorded (a Warning event if another
Service holds it). Entries whose Service is gone -- deleted, or never completed -- are released
after a fresh list of Services shows no owner with that uid, so no address leaks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hakube.api.v1 import core_pb2
from hakube.controllers import records
from hakube.controllers.base import Controller
from hakube.controllers.manager import register

RECORD_NS = "kube-system"
RECORD_NAME = "hakube-service-cluster-ips"
_RECORD_KEY = ("", "\0record")  # a queue key no Service can have


def wants_ip(svc: core_pb2.Service) -> bool:
    return svc.spec.type != "ExternalName" and svc.spec.cluster_ip != "None"


def _entry(svc: core_pb2.Service) -> str:
    m = svc.metadata
    return f"{m.namespace}/{m.name}/{m.uid}"


def _entry_uid(value: str) -> str:
    return value.rsplit("/", 1)[-1]


@register
class ClusterIPController(Controller):
    name = "clusterip"

    def setup(self) -> None:
        self.network = ipaddress.ip_network(self.ctx.settings.service_cluster_ip_range)
        self.services = self.ctx.informers.get(core_pb2.Service)
        self.services.add_handlers(
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=lambda svc: self.queue.add(_RECORD_KEY),
        )
        self.queue.add(_RECORD_KEY)  # release what was left behind by earlier terms

    def sync(self, key: Any) -> None:
        if key == _RECORD_KEY:
            self._release_unowned()
            return
        svc = self.services.get(key[1], key[0])
        if svc is None or not wants_ip(svc) or svc.metadata.deletion_timestamp:
            return
        if svc.spec.cluster_ip:
            self._record_given(svc)
        else:
            self._allocate(svc)

    # -- the record ---------------------------------------------------------------------------

    def _record(self) -> core_pb2.ConfigMap:
        return records.get_or_create(self.client, RECORD_NS, RECORD_NAME)

    def _free(self, used: Any) -> str:
        net = self.network
        first, last = int(net.network_address) + 1, int(net.broadcast_address) - 1
        for n in range(first, last + 1):
            ip = str(ipaddress.ip_address(n))
            if ip not in used:
                return ip
        raise RuntimeError(f"service CIDR {net} is exhausted")

    def _allocate(self, svc: core_pb2.Service) -> None:
        record = self._record()
        mine = [ip for ip, v in record.data.items() if _entry_uid(v) == svc.metadata.uid]
        if mine:
            ip = mine[0]
        else:
            ip = self._free(record.data)
            record.data[ip] = _entry(svc)
            self.client.configmaps.update(record)  # CAS: Conflict -> retry with a fresh read
        fresh = self.client.services.get(svc.metadata.name, namespace=svc.metadata.namespace)
        if fresh.metadata.uid != svc.metadata.uid or fresh.spec.cluster_ip:
            self.queue.add(_RECORD_KEY)
            return
        fresh.spec.cluster_ip = ip
        del fresh.spec.cluster_ips[:]
        fresh.spec.cluster_ips.append(ip)
        self.client.services.update(fresh)
        self.events.normal(svc, "ClusterIPAllocated", f"allocated clusterIP {ip}")

    def _record_given(self, svc: core_pb2.Service) -> None:
        ip = svc.spec.cluster_ip
        record = self._record()
        holder = record.data.get(ip)
        if holder is not None and _entry_uid(holder) == svc.metadata.uid:
            return
        if holder is not None and self._exists(_entry_uid(holder)):
            self.events.warning(
                svc, "ClusterIPAlreadyAllocated", f"clusterIP {ip} is already held by {holder}"
            )
            return
        try:
            inside = ipaddress.ip_address(ip) in self.network
        except ValueError:
            inside = False
        if not inside:
            return  # outside the range we manage: nothing to reserve
        record.data[ip] = _entry(svc)
        self.client.configmaps.update(record)

    def _exists(self, uid: str) -> bool:
        return any(s.metadata.uid == uid for s in self.client.services.list().items)

    def _release_unowned(self) -> None:
        record = self._record()
        live = {s.metadata.uid: s.spec.cluster_ip for s in self.client.services.list().items}
        stale = [
            ip
            for ip, v in record.data.items()
            if _entry_uid(v) not in live or live[_entry_uid(v)] not in ("", ip)
        ]
        if not stale:
            return
        for ip in stale:
            del record.data[ip]
        self.client.configmaps.update(record)
