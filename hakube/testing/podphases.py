"""Test stand-in for a node agent's status reports: make pods "run", "succeed" or "fail".

Controller tests run without agents; they move pods through their phases by writing the status
an agent would write (phase, podIP, Ready condition, container states). Writes carry no
resourceVersion, so the API server merges the status into the current object.
"""

from __future__ import annotations

import itertools

from hakube.api.timestamps import micro_time, rfc3339
from hakube.api.v1 import pod_pb2
from hakube.client import Client, errors
from hakube.testing.wait import wait_for

_ips = itertools.count(2)


def next_ip() -> str:
    """A fresh pod IP in 10.244.0.0/16 (unique within this test process)."""
    n = next(_ips)
    return f"10.244.{n // 250}.{n % 250 + 1}"


def _write(client: Client, pod: pod_pb2.Pod) -> pod_pb2.Pod:
    pod.metadata.resource_version = ""
    return client.pods.update_status(pod)


def set_running(
    client: Client, name: str, namespace: str = "default", *, ip: str = "", ready: bool = True
) -> pod_pb2.Pod:
    """Phase Running with ``ip`` (a fresh one by default) and condition Ready=ready."""
    return _write(client, running(client.pods.get(name, namespace=namespace), ip=ip, ready=ready))


def running(pod: pod_pb2.Pod, *, ip: str = "", ready: bool = True) -> pod_pb2.Pod:
    """A copy of ``pod`` with the status an agent reports once its containers run: phase
    Running, a pod IP (``ip``, the pod's own, or a fresh one), running container states, and
    conditions ContainersReady and Ready set to ``ready``."""
    out = pod_pb2.Pod()
    out.CopyFrom(pod)
    pod = out
    now = rfc3339()
    pod.status.phase = "Running"
    pod.status.pod_ip = ip or pod.status.pod_ip or next_ip()
    del pod.status.pod_ips[:]
    pod.status.pod_ips.add(ip=pod.status.pod_ip)
    pod.status.start_time = pod.status.start_time or now
    kept = [c for c in pod.status.conditions if c.type not in ("Ready", "ContainersReady")]
    del pod.status.conditions[:]
    pod.status.conditions.extend(kept)
    for type_ in ("ContainersReady", "Ready"):
        status = "True" if ready else "False"
        pod.status.conditions.add(type=type_, status=status, last_transition_time=now)
    del pod.status.container_statuses[:]
    for spec in pod.spec.containers:
        st = pod.status.container_statuses.add(name=spec.name, image=spec.image, ready=ready)
        st.state.running.started_at = now
    return pod


def set_finished(
    client: Client, name: str, namespace: str = "default", *, exit_code: int = 0
) -> pod_pb2.Pod:
    """Phase Succeeded (exit code 0) or Failed, with terminated container states."""
    pod = client.pods.get(name, namespace=namespace)
    pod.status.phase = "Succeeded" if exit_code == 0 else "Failed"
    for c in pod.status.conditions:
        if c.type == "Ready":
            c.status = "False"
    del pod.status.container_statuses[:]
    for spec in pod.spec.containers:
        st = pod.status.container_statuses.add(name=spec.name, image=spec.image)
        st.state.terminated.exit_code = exit_code
        st.state.terminated.reason = "Completed" if exit_code == 0 else "Error"
        st.state.terminated.finished_at = micro_time()  # fractions: back-off is measured
    return _write(client, pod)


def owned_pods(client: Client, owner_uid: str, namespace: str = "default") -> list[pod_pb2.Pod]:
    """Pods whose controller ownerReference is ``owner_uid``, oldest first."""
    pods = [
        p
        for p in client.pods.list(namespace=namespace).items
        if any(r.uid == owner_uid and r.controller for r in p.metadata.owner_references)
    ]
    return sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))


def wait_pods(
    client: Client, owner_uid: str, n: int, namespace: str = "default", timeout: float = 20
) -> list[pod_pb2.Pod]:
    """Wait until exactly ``n`` pods (not being deleted) are owned by ``owner_uid``."""
    found: list[pod_pb2.Pod] = []

    def have() -> bool:
        found[:] = [
            p for p in owned_pods(client, owner_uid, namespace) if not p.metadata.deletion_timestamp
        ]
        return len(found) == n

    wait_for(have, timeout, f"{n} pods owned by {owner_uid}", interval=0.05)
    return found


def finish_terminating(client: Client, pods: list[pod_pb2.Pod]) -> int:
    """Remove pods that are terminating (as an agent does once containers stopped); count."""
    n = 0
    for p in pods:
        if p.metadata.deletion_timestamp:
            try:
                client.pods.delete(
                    p.metadata.name, namespace=p.metadata.namespace, grace_period_seconds=0
                )
                n += 1
            except errors.NotFound:
                pass
    return n
