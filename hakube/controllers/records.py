"""Allocation records: one ConfigMap that an allocating controller compare-and-swaps.

Allocators that must never hand out a value twice (clusterIPs, node podCIDRs) keep what they
gave in one object of the store and update it conditionally on its resourceVersion before they
write the value onto its owner, so that overlapping leaders or concurrent syncs cannot both win.
"""

from __future__ import annotations

from hakube.api.v1 import core_pb2, meta_pb2
from hakube.client import Client, errors


def get_or_create(client: Client, namespace: str, name: str) -> core_pb2.ConfigMap:
    """The record ``namespace/name``, created empty if it does not exist yet."""
    try:
        return client.configmaps.get(name, namespace=namespace)
    except errors.NotFound:
        pass
    cm = core_pb2.ConfigMap(metadata=meta_pb2.ObjectMeta(name=name, namespace=namespace))
    try:
        return client.configmaps.create(cm)
    except errors.AlreadyExists:
        return client.configmaps.get(name, namespace=namespace)
