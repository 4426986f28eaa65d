"""Endpoints: for every Service with a selector, the addresses of the pods it selects.

Ready pods (phase Running, condition Ready) go to ``addresses``, the others that have an IP
to ``notReadyAddresses`` (all to ``addresses`` with ``publishNotReadyAddresses``); finished and
terminating pods are left out. Each service port's ``targetPort`` is resolved per pod: a number
is used as is, a name is looked up among the pod's container ports (a pod without that port
is not listed for it). Pods that resolve to the same port numbers share one subset, as in
Kubernetes. Services without a selector keep whatever Endpoints their owner writes; the
Endpoints of a deleted Service are deleted.
"""

from __future__ import annotations

from typing import Any

from hakube.api.v1 import core_pb2, meta_pb2, pod_pb2
from hakube.client import errors
from hakube.controllers.base import Controller
from hakube.controllers.manager import register
from hakube.controllers.owned import on_any_change
from hakube.controllers.podutil import pod_ready

PortsKey = tuple[tuple[str, int, str], ...]


def _selected(svc: core_pb2.Service, pod: pod_pb2.Pod) -> bool:
    sel = svc.spec.selector
    return (
        bool(sel)
        and pod.metadata.namespace == svc.metadata.namespace
        and all(pod.metadata.labels.get(k) == v for k, v in sel.items())
    )


def resolve_ports(svc: core_pb2.Service, pod: pod_pb2.Pod) -> PortsKey:
    """(name, port, protocol) of each service port this pod serves."""
    out = []
    for sp in svc.spec.ports:
        tp = sp.target_port
        which = tp.WhichOneof("kind")
        if which == "number_value":
            port = int(tp.number_value)
        elif which == "string_value" and not tp.string_value.isdigit():
            port = next(
                (
                    cp.container_port
                    for c in pod.spec.containers
                    for cp in c.ports
                    if cp.name == tp.string_value and (cp.protocol or "TCP") == sp.protocol
                ),
                0,
            )
        elif which == "string_value":
            port = int(tp.string_value)
        else:
            port = sp.port
        if port:
            out.append((sp.name, port, sp.protocol or "TCP"))
    return tuple(out)


def _address(svc: core_pb2.Service, pod: pod_pb2.Pod) -> core_pb2.EndpointAddress:
    addr = core_pb2.EndpointAddress(
        ip=pod.status.pod_ip,
        node_name=pod.spec.node_name,
        target_ref=meta_pb2.ObjectReference(
            kind="Pod",
            namespace=pod.metadata.namespace,
            name=pod.metadata.name,
            uid=pod.metadata.uid,
        ),
    )
    if pod.spec.hostname and pod.spec.subdomain == svc.metadata.name:
        addr.hostname = pod.spec.hostname
    return addr


def desired_subsets(
    svc: core_pb2.Service, pods: list[pod_pb2.Pod]
) -> list[core_pb2.EndpointSubset]:
    """The subsets the Endpoints of ``svc`` should hold, in a stable order."""
    groups: dict[PortsKey, core_pb2.EndpointSubset] = {}
    for pod in sorted(pods, key=lambda p: (p.status.pod_ip, p.metadata.name)):
        if not pod.status.pod_ip or pod.status.phase in ("Succeeded", "Failed"):
            continue
        if pod.metadata.deletion_timestamp and not svc.spec.publish_not_ready_addresses:
            continue
        ports = resolve_ports(svc, pod)
        if svc.spec.ports and not ports:
            continue
        subset = groups.get(ports)
        if subset is None:
            subset = groups[ports] = core_pb2.EndpointSubset(
                ports=[core_pb2.EndpointPort(name=n, port=p, protocol=pr) for n, p, pr in ports]
            )
        if pod_ready(pod) or svc.spec.publish_not_ready_addresses:
            subset.addresses.append(_address(svc, pod))
        else:
            subset.not_ready_addresses.append(_address(svc, pod))
    return [groups[k] for k in sorted(groups)]


@register
class EndpointsController(Controller):
    name = "endpoints"
    workers = 2

    def setup(self) -> None:
        self.services = self.ctx.informers.get(core_pb2.Service)
        self.pods = self.ctx.informers.get(pod_pb2.Pod)
        self.pods_by_ns = self.ctx.informers.by_namespace(pod_pb2.Pod)
        self.endpoints = self.ctx.informers.get(core_pb2.Endpoints)
        on_any_change(self.services, self.enqueue)
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda old, new: self._pod_changed(new, old),
            on_delete=self._pod_changed,
        )
        self.endpoints.add_handlers(on_delete=self.enqueue)

    def _pod_changed(self, pod: pod_pb2.Pod, old: pod_pb2.Pod | None = None) -> None:
        for svc in self.services.list():
            if _selected(svc, pod) or (old is not None and _selected(svc, old)):
                self.enqueue(svc)

    def sync(self, key: Any) -> None:
        ns, name = key
        svc = self.services.get(name, ns)
        current = self.endpoints.get(name, ns)
        if svc is None:
            if current is not None:
                try:
                    self.client.endpoints.delete(name, namespace=ns, uid=current.metadata.uid)
                except (errors.NotFound, errors.Conflict):
                    pass
            return
        if not svc.spec.selector or svc.spec.type == "ExternalName":
            return  # someone else's Endpoints, or a DNS alias that has none
        pods = [p for p in self.pods_by_ns.list(ns) if _selected(svc, p)]
        subsets = desired_subsets(svc, pods)
        if current is None:
            ep = core_pb2.Endpoints(
                metadata=meta_pb2.ObjectMeta(
                    name=name, namespace=ns, labels=dict(svc.metadata.labels)
                ),
                subsets=subsets,
            )
            try:
                self.client.endpoints.create(ep)
            except errors.AlreadyExists:
                raise RuntimeError(f'endpoints "{ns}/{name}" appeared meanwhile') from None
            return
        if list(current.subsets) == subsets and dict(current.metadata.labels) == dict(
            svc.metadata.labels
        ):
            return
        ep = core_pb2.Endpoints()
        ep.CopyFrom(current)
        del ep.subsets[:]
        ep.subsets.extend(subsets)
        ep.metadata.labels.clear()
        ep.metadata.labels.update(svc.metadata.labels)
        self.client.endpoints.update(ep)  # CAS on the cached version; Conflict retries
