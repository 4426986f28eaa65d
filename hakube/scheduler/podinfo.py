"""What a pod asks of a node, computed once per pod: resource requests, host ports, priority.

Requests follow Kubernetes: the sum over containers, raised to the largest init container
(init containers run one at a time, before the others), unless the pod states a pod-level
request (``spec.resources``), which then counts instead. A container without a CPU or memory
request counts as zero for fit; for scoring it counts as 100m CPU / 200 MiB, the defaults
Kubernetes' scorer uses so that request-less pods still spread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hakube.api import podresources, quantity
from hakube.api.v1 import pod_pb2

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
    cpu, memory = podresources.pod_request(spec, "cpu"), podresources.pod_request(spec, "memory")
    if cpu is not None:  # a pod-level request is what the pod reserves as a whole
        fit.milli_cpu = score.milli_cpu = quantity.milli(cpu)
    if memory is not None:
        fit.memory = score.memory = quantity.value(memory)
    ports = [
        (p.protocol or "TCP", p.host_ip or "0.0.0.0", p.host_port)
        for c in spec.containers
        for p in c.ports
        if p.host_port
    ]
    prio = spec.priority if spec.HasField("priority") else priority
    return PodInfo(pod, prio, fit, score, ports)
