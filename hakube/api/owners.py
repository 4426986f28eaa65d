"""Owner references: which object controls which.

Controllers adopt and release objects by their controller reference, the garbage collector
follows owner references, and ``hakubectl rollout`` finds a Deployment's ReplicaSets by them;
all read the reference the same way, here.
"""

from __future__ import annotations

from hakube.api.v1 import meta_pb2


def controller_ref(meta: meta_pb2.ObjectMeta) -> meta_pb2.OwnerReference | None:
    """The owner reference with ``controller: true``, or None (at most one may have it)."""
    for ref in meta.owner_references:
        if ref.controller:
            return ref
    return None
