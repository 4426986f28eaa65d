"""Pure Deployment arithmetic: template hashes, revisions, surge/unavailable fenceposts, and
how many pods each ReplicaSet should have. No I/O here, so all of it is unit-tested directly.
``template_hash`` and ``scaled`` are also the DaemonSet's and StatefulSet's (revision hashes,
maxUnavailable): one hash and one int-or-percent rule for every workload kind.

Counting is deliberately conservative, so the bounds hold for the pods that really exist and
not only for the numbers written in specs: a ReplicaSet is taken to have
``max(spec.replicas, status.replicas)`` pods (a scale-down counts only once its pods are
observed gone) and ``min(status.availableReplicas, spec.replicas)`` available ones (a
scale-down may remove available pods before the status says so).
"""

from __future__ import annotations

import math

from google.protobuf import struct_pb2

from hakube.api.rollout import revision, without_hash
from hakube.api.v1 import pod_pb2, workloads_pb2

REVISION_HASH_LABEL = "controller-revision-hash"
"""The DaemonSet's and StatefulSet's pod label naming the template revision."""
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
AUTO_ROLLBACK = "hakube.io/auto-rollback"
"""Opt-in (``"true"``): roll back by itself when a rollout exceeds its progress deadline."""
PROGRESS_FAILED = "hakube.io/progress-failed"
"""Set on a ReplicaSet whose rollout exceeded the deadline: never an auto-rollback target."""
_SAFE = "bcdfghjklmnpqrstvwxz2456789"

RS = workloads_pb2.ReplicaSet
Deployment = workloads_pb2.Deployment


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: pod_pb2.PodTemplateSpec, collision_count: int = 0) -> str:
    """The ``pod-template-hash`` of a template: FNV-1a of its canonical bytes (the hash label
    itself left out), salted by the collision count, spelled in Kubernetes' safe alphabet."""
    data = without_hash(template).SerializeToString(deterministic=True)
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(_fnv32a(data)))


def scaled(v: struct_pb2.Value, total: int, *, round_up: bool) -> int:
    """An int-or-percent (``3``, ``"3"`` or ``"25%"``) against ``total``; 0 when it is neither
    (the API server validates these; a controller must not crash-loop on one it missed)."""
    if v.WhichOneof("kind") == "number_value":
        return int(v.number_value)
    text = v.string_value.strip()
    if text.endswith("%"):
        pct = text[:-1]
        if not pct.isdigit():
            return 0
        exact = total * int(pct) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text) if text.isdigit() else 0


def fenceposts(d: Deployment) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; never both zero (unavailable becomes 1)."""
    if d.spec.strategy.type != "RollingUpdate":
        return 0, 0
    ru = d.spec.strategy.rolling_update
    surge = scaled(ru.max_surge, d.spec.replicas, round_up=True)
    unavailable = scaled(ru.max_unavailable, d.spec.replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(d: Deployment) -> int:
    return min(fenceposts(d)[1], d.spec.replicas)


def pods_of(rs: RS) -> int:
    """Pods an RS may have right now (see the module docstring)."""
    return max(rs.spec.replicas, rs.status.replicas)


def available_of(rs: RS) -> int:
    return min(rs.status.available_replicas, rs.spec.replicas)


def total_pods(rss: list[RS]) -> int:
    return sum(pods_of(rs) for rs in rss)


def total_available(rss: list[RS]) -> int:
    return sum(available_of(rs) for rs in rss)


def new_rs_replicas(d: Deployment, all_rss: list[RS], new_rs: RS) -> int:
    """How big the new ReplicaSet may be now (rolling: within maxSurge of the total)."""
    if d.spec.strategy.type != "RollingUpdate":
        return d.spec.replicas
    current = new_rs.spec.replicas
    if current >= d.spec.replicas:
        return d.spec.replicas
    surge, _ = fenceposts(d)
    room = d.spec.replicas + surge - total_pods(all_rss)
    if room <= 0:
        return current
    return current + min(room, d.spec.replicas - current)


def old_scale_down_plan(d: Deployment, old_rss: list[RS], new_rs: RS) -> dict[str, int]:
    """New sizes for old ReplicaSets (oldest first) in a rolling update: first drop their
    unavailable pods, within what the specs leave above ``replicas - maxUnavailable``; then
    drop available pods while the available total stays at or above that minimum."""
    all_rss = [*old_rss, new_rs]
    min_available = d.spec.replicas - max_unavailable(d)
    new_unavailable = new_rs.spec.replicas - available_of(new_rs)
    budget = sum(rs.spec.replicas for rs in all_rss) - min_available - new_unavailable
    plan: dict[str, int] = {}
    if budget <= 0 or not any(rs.spec.replicas for rs in old_rss):
        return plan
    oldest_first = sorted(old_rss, key=lambda rs: (revision(rs), rs.metadata.creation_timestamp))
    size = {rs.metadata.name: rs.spec.replicas for rs in old_rss}
    for rs in oldest_first:
        unhealthy = rs.spec.replicas - available_of(rs)
        n = min(budget, unhealthy)
        if n > 0:
            size[rs.metadata.name] -= n
            budget -= n
    spare = total_available(all_rss) - min_available
    for rs in oldest_first:
        if spare <= 0:
            break
        n = min(size[rs.metadata.name], spare)
        size[rs.metadata.name] -= n
        spare -= n
    return {
        name: n
        for name, n in size.items()
        if n != next(rs.spec.replicas for rs in old_rss if rs.metadata.name == name)
    }


def proportions(d: Deployment, active: list[RS], new_rs: RS | None) -> dict[str, int]:
    """Replica counts per RS name after the Deployment was scaled mid-rollout: the change is
    shared in proportion to each RS's size (largest first, rounding leftovers to the newest
    when growing and the oldest when shrinking), keeping the rollout's progress."""
    surge, _ = fenceposts(d)
    allowed = d.spec.replicas + surge
    current = sum(rs.spec.replicas for rs in active)
    delta = allowed - current
    if delta == 0 or current == 0:
        return {rs.metadata.name: rs.spec.replicas for rs in active}
    order = sorted(active, key=lambda rs: (-rs.spec.replicas, -revision(rs)))
    out: dict[str, int] = {}
    given = 0
    for rs in order:
        share = int(rs.spec.replicas * delta / current)  # truncates toward zero
        out[rs.metadata.name] = rs.spec.replicas + share
        given += share
    left = delta - given
    pick = new_rs if (new_rs is not None and left > 0) else (order[0] if order else None)
    if left and pick is not None:
        out[pick.metadata.name] = max(0, out[pick.metadata.name] + left)
    return out


def rollback_target(old_rss: list[RS], new_rs: RS) -> RS | None:
    """The newest earlier revision that did not itself fail to progress."""
    rev = revision(new_rs)
    good = [
        rs
        for rs in old_rss
        if revision(rs) < rev and rs.metadata.annotations.get(PROGRESS_FAILED) != "true"
    ]
    return max(good, key=revision, default=None)
