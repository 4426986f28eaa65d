"""What a pod asks of a node, computed once per pod: resource requests, host ports, priority.

Requests follow Kubernetes: the sum over containers, raised to the largest init container
(init containers run one at a time, before the others). A container without a CPU or memory
request counts as zero for fit; for scoring it counts as 100m CPU / 200 MiB, the defaults
Kubernetes' scorer uses so that request-less pods still spread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hakube.api.v1 import meta_pb2, pod_pb2
from hakube.apiserver.selector import SelectorError, from_label_selector
from hakube.scheduler import quantity

DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
OTHER_FIELDS = ("cpu", "memory", "pods")

PodKey = tuple[str, str]


@dataclass
class Resources:
    """CPU in millicores, memory in bytes, pods as a count."""

    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def add(self, other: Resources, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.pods += sign * other.pods


def _requests(containers: Iterable[pod_pb2.Container]) -> list[tuple[int, int, int, int]]:
    out = []
    for c in containers:
        req = c.resources.requests
        cpu = quantity.milli(req["cpu"]) if "cpu" in req else 0
        mem = quantity.value(req["memory"]) if "memory" in req else 0
        out.append(
            (
                cpu,
                mem,
                cpu if "cpu" in req else DEFAULT_MILLI_CPU,
                mem if "memory" in req else DEFAULT_MEMORY,
            )
        )
    return out


@dataclass
class PodInfo:
    """A pod plus what is derived from it; ``pod`` is the informer's object (read-only)."""

    pod: pod_pb2.Pod
    priority: int = 0
    requests: Resources = field(default_factory=Resources)
    """What fit compares against allocatable (missing requests count 0)."""
    score_requests: Resources = field(default_factory=Resources)
    """What scoring uses (missing requests count as the defaults above)."""
    host_ports: list[tuple[str, str, int]] = field(default_factory=list)
    """(protocol, hostIP, port) for every container port with a hostPort."""

    @property
    def key(self) -> PodKey:
        return (self.pod.metadata.namespace, self.pod.metadata.name)

    @property
    def labels(self) -> Any:
        return self.pod.metadata.labels


def pod_info(pod: pod_pb2.Pod, priority: int = 0) -> PodInfo:
    spec = pod.spec
    main = _requests(spec.containers)
    init = _requests(spec.init_containers)
    fit = Resources(sum(r[0] for r in main), sum(r[1] for r in main), 1)
    score = Resources(sum(r[2] for r in main), sum(r[3] for r in main), 1)
    for r in init:
        fit.milli_cpu, fit.memory = max(fit.milli_cpu, r[0]), max(fit.memory, r[1])
        score.milli_cpu, score.memory = max(score.milli_cpu, r[2]), max(score.memory, r[3])
    ports = [
        (p.protocol or "TCP", p.host_ip or "0.0.0.0", p.host_port)
        for c in spec.containers
        for p in c.ports
        if p.host_port
    ]
    prio = spec.priority if spec.HasField("priority") else priority
    return PodInfo(pod, prio, fit, score, ports)


def ports_conflict(want: tuple[str, str, int], used: Iterable[tuple[str, str, int]]) -> bool:
    """Same protocol and port, and the host IPs overlap (0.0.0.0 overlaps everything)."""
    proto, ip, port = want
    for uproto, uip, uport in used:
        if uport == port and uproto == proto and (ip == uip or "0.0.0.0" in (ip, uip)):
            return True
    return False


def selector_matches(sel: meta_pb2.LabelSelector, labels: Any) -> bool:
    """A LabelSelector message against a label map; a malformed selector matches nothing.
    An empty selector matches everything, as in Kubernetes' LabelSelectorAsSelector."""
    try:
        reqs = from_label_selector(sel)
    except SelectorError:
        return False
    return all(r.matches(labels) for r in reqs)


def node_requirement_matches(req: pod_pb2.NodeSelectorRequirement, value: str | None) -> bool:
    """One node-selector requirement against a node label (None: the label is absent)."""
    op = req.operator
    if op == "In":
        return value is not None and value in req.values
    if op == "NotIn":
        return value is None or value not in req.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(req.values) != 1:
            return False
        try:
            have, bound = int(value), int(req.values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def node_term_matches(term: pod_pb2.NodeSelectorTerm, labels: Any, name: str) -> bool:
    """A node-selector term (all its expressions and fields hold); an empty term matches
    nothing, as in Kubernetes."""
    if not term.match_expressions and not term.match_fields:
        return False
    for r in term.match_expressions:
        if not node_requirement_matches(r, labels.get(r.key)):
            return False
    for r in term.match_fields:
        if r.key != "metadata.name" or not node_requirement_matches(r, name):
            return False
    return True


def tolerates(tol: pod_pb2.Toleration, key: str, value: str, effect: str) -> bool:
    """Whether one toleration covers a taint (Kubernetes' ToleratesTaint)."""
    if tol.effect and tol.effect != effect:
        return False
    if tol.key and tol.key != key:
        return False
    if tol.operator == "Exists":
        return True
    if tol.operator in ("", "Equal"):
        return bool(tol.key or not key) and tol.value == value
    return False


def find_toleration(
    tolerations: Iterable[pod_pb2.Toleration], key: str, value: str, effect: str
) -> pod_pb2.Toleration | None:
    for t in tolerations:
        if tolerates(t, key, value, effect):
            return t
    return None
