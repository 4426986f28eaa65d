"""The scheduler's writes to pod status: PodScheduled=False/Unschedulable, nominatedNodeName.

Both read the current pod, change only their field and write with the pod's resourceVersion
(compare-and-swap), retrying a few times on a conflict; a pod that got bound meanwhile is left
alone. A status that already says the same thing is not rewritten, so a pod retried every few
seconds does not churn the store.
"""

from __future__ import annotations

from collections.abc import Callable

from hakube.api.conditions import find, set_condition
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import pod_pb2
from hakube.client import errors
from hakube.client.client import Client

ATTEMPTS = 3


def _modify(client: Client, pod: pod_pb2.Pod, change: Callable[[pod_pb2.Pod], bool]) -> None:
    ns, name = pod.metadata.namespace, pod.metadata.name
    for _ in range(ATTEMPTS):
        cur = client.pods.get(name, namespace=ns, timeout=10)
        if cur.metadata.uid != pod.metadata.uid or cur.spec.node_name:
            return
        if not change(cur):
            return
        try:
            client.pods.update_status(cur, timeout=10)
            return
        except errors.Conflict:
            continue


def mark_unschedulable(client: Client, pod: pod_pb2.Pod, message: str) -> None:
    def change(cur: pod_pb2.Pod) -> bool:
        if find(cur.status.conditions, "PodScheduled") is None:
            cur.status.phase = cur.status.phase or "Pending"
        return set_condition(
            cur.status.conditions, "PodScheduled", "False", "Unschedulable", message, now=rfc3339()
        )

    _modify(client, pod, change)


def set_nominated(client: Client, pod: pod_pb2.Pod, node: str) -> None:
    def change(cur: pod_pb2.Pod) -> bool:
        if cur.status.nominated_node_name == node:
            return False
        cur.status.nominated_node_name = node
        return True

    _modify(client, pod, change)
