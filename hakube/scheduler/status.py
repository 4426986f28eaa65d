"""The scheduler's writes to pod status: PodScheduled=False/Unschedulable, nominatedNodeName.

Both read the current pod, change only their field and write with the pod's resourceVersion
(compare-and-swap), retrying a few times on a conflict; a pod that got bound meanwhile is left
alone. A status that already says the same thing is not rewritten, so a pod retried every few
seconds does not churn the store.
"""

from __future__ import annotations

from collections.abc import Callable

from hakube.api.v1 import pod_pb2
from hakube.client import errors
from hakube.client.client import Client
from hakube.leaderelection.elector import micro_time

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
        for c in cur.status.conditions:
            if c.type == "PodScheduled":
                if (c.status, c.reason, c.message) == ("False", "Unschedulable", message):
                    return False
                c.status, c.reason, c.message = "False", "Unschedulable", message
                c.last_transition_time = micro_time()[:19] + "Z"
                return True
        cur.status.conditions.add(
            type="PodScheduled",
            status="False",
            reason="Unschedulable",
            message=message,
            last_transition_time=micro_time()[:19] + "Z",
        )
        cur.status.phase = cur.status.phase or "Pending"
        return True

    _modify(client, pod, change)


def set_nominated(client: Client, pod: pod_pb2.Pod, node: str) -> None:
    def change(cur: pod_pb2.Pod) -> bool:
        if cur.status.nominated_node_name == node:
            return False
        cur.status.nominated_node_name = node
        return True

    _modify(client, pod, change)
