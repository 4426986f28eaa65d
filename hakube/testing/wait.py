"""Waiting on conditions with deadlines: the only way tests and harnesses wait."""

from __future__ import annotations

import time
from collections.abc import Callable

from hakube.api.v1 import pod_pb2
from hakube.client import Client


def wait_for(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``cond`` until truthy; TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


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
