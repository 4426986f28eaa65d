"""What the runtime holds for each pod, found through the labels the agent puts on it.

Every sandbox and container the agent creates carries ``hakube.io/node``, ``hakube.io/pod-uid``
(plus the pod's name and namespace) and, on containers, ``hakube.io/container-name`` and
``hakube.io/container-kind`` (init or app). The runtime is therefore the agent's memory: after a
restart the agent lists by these labels and finds every sandbox and container it had, so it
adopts them instead of starting new ones. The container's CRI ``attempt`` is its restart count;
the newest attempt is the current instance, the one before it is what ``--previous`` logs and
``lastState`` show, older ones are removed.

Several agents may share one containerd (tests do): the node label keeps them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hakube.api.v1 import pod_pb2
from hakube.cri import specs
from hakube.cri.client import CriClient
from hakube.cri.errors import NotFound
from hakube.cri.v1 import api_pb2 as pb

LABEL_NODE = "hakube.io/node"
LABEL_POD_UID = "hakube.io/pod-uid"
LABEL_POD_NAME = "hakube.io/pod-name"
LABEL_POD_NAMESPACE = "hakube.io/pod-namespace"
LABEL_CONTAINER = "hakube.io/container-name"
LABEL_KIND = "hakube.io/container-kind"
ANNOTATION_GRACE = "hakube.io/termination-grace-seconds"
"""On containers: the pod's grace period, used to stop a container whose pod is gone."""


@dataclass
class PodRecord:
    """The runtime's state of one pod: sandboxes newest first, and per container name its
    instances newest attempt first."""

    uid: str
    sandboxes: list[pb.PodSandbox] = field(default_factory=list)
    containers: dict[str, list[pb.ContainerStatus]] = field(default_factory=dict)

    def ready_sandbox(self) -> pb.PodSandbox | None:
        return next((s for s in self.sandboxes if s.state == pb.SANDBOX_READY), None)

    def latest(self, name: str) -> pb.ContainerStatus | None:
        found = self.containers.get(name)
        return found[0] if found else None

    def previous(self, name: str) -> pb.ContainerStatus | None:
        found = self.containers.get(name)
        return found[1] if found and len(found) > 1 else None

    def all_containers(self) -> list[pb.ContainerStatus]:
        return [c for cs in self.containers.values() for c in cs]


class RuntimeView:
    """Label-scoped reads of one node's runtime."""

    def __init__(self, cri: CriClient, node: str) -> None:
        self.cri = cri
        self.node = node

    def pod_labels(self, pod: pod_pb2.Pod) -> dict[str, str]:
        return {
            LABEL_NODE: self.node,
            LABEL_POD_UID: pod.metadata.uid,
            LABEL_POD_NAME: pod.metadata.name,
            LABEL_POD_NAMESPACE: pod.metadata.namespace,
        }

    def pod(self, uid: str) -> PodRecord:
        """Sandboxes and containers of one pod, with full container statuses."""
        sel = {LABEL_NODE: self.node, LABEL_POD_UID: uid}
        rec = PodRecord(uid)
        rec.sandboxes = sorted(
            self.cri.list_pod_sandboxes(labels=sel),
            key=lambda s: (s.metadata.attempt, s.created_at),
            reverse=True,
        )
        for c in self.cri.list_containers(labels=sel):
            try:
                st = self.cri.container_status(c.id)
            except NotFound:
                continue
            rec.containers.setdefault(c.labels.get(LABEL_CONTAINER, c.metadata.name), []).append(st)
        for cs in rec.containers.values():
            cs.sort(key=lambda s: (s.metadata.attempt, s.created_at), reverse=True)
        return rec

    def states(self) -> dict[str, tuple[str, int]]:
        """container id -> (pod uid, state) for every container of this node; the cheap relist
        that notices exits."""
        out = {}
        for c in self.cri.list_containers(labels={LABEL_NODE: self.node}):
            out[c.id] = (c.labels.get(LABEL_POD_UID, ""), int(c.state))
        for s in self.cri.list_pod_sandboxes(labels={LABEL_NODE: self.node}):
            out["sandbox/" + s.id] = (s.labels.get(LABEL_POD_UID, ""), int(s.state))
        return out


def sandbox_config(
    view: RuntimeView,
    pod: pod_pb2.Pod,
    *,
    attempt: int,
    host_network: bool,
    log_directory: str,
    dns: pb.DNSConfig | None = None,
    cgroup_parent: str = "",
    resources: pb.LinuxContainerResources | None = None,
) -> pb.PodSandboxConfig:
    """The sandbox of ``pod``; ``cgroup_parent``/``resources``: its pod cgroup
    (hakube.agent.podcgroup), empty when pod cgroups are off."""
    ports = [
        pb.PortMapping(
            protocol={"UDP": pb.UDP, "SCTP": pb.SCTP}.get(p.protocol, pb.TCP),
            container_port=p.container_port,
            host_port=p.host_port,
            host_ip=p.host_ip,
        )
        for c in pod.spec.containers
        for p in c.ports
        if p.host_port and not host_network
    ]
    return specs.sandbox_config(
        name=pod.metadata.name,
        namespace=pod.metadata.namespace,
        uid=pod.metadata.uid,
        attempt=attempt,
        host_network=host_network,
        hostname="" if host_network else (pod.spec.hostname or pod.metadata.name)[:63],
        log_directory=log_directory,
        labels=view.pod_labels(pod),
        port_mappings=ports,
        dns=dns,
        share_pid=pod.spec.share_process_namespace,
        cgroup_parent=cgroup_parent,
        resources=resources,
    )


def grace_seconds(pod: pod_pb2.Pod) -> int:
    """How long a container of ``pod`` gets between SIGTERM and SIGKILL now."""
    if pod.metadata.HasField("deletion_grace_period_seconds"):
        return max(0, pod.metadata.deletion_grace_period_seconds)
    return max(0, pod.spec.termination_grace_period_seconds)
