"""Pending pods waiting for a decision: by priority, then age; back-off; unschedulable pool.

Three places, as in Kubernetes:

- **active**: a heap by (-priority, time first queued); ``pop`` takes from here.
- **backoff**: pods that failed recently wait ``initial x 2^(attempts-1)`` (capped) before
  going back to active.
- **unschedulable**: pods that fit nowhere wait for a change in the cluster (``move_all``:
  a node added or changed, a pod deleted or finished) and, at the latest, ``max_wait`` seconds.

A pod being decided on is *in flight*; informer updates to it are kept and applied when it is
requeued. A cluster change during its attempt sends it to backoff instead of the unschedulable
pool, so a change that would have let it fit is never missed.

Updates that only touch a pod's status (the scheduler's own PodScheduled=False, for one) do not
move a pod: only spec/metadata changes do.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hakube.api.v1 import pod_pb2
from hakube.scheduler.podinfo import PodKey


@dataclass
class QueuedPod:
    pod: pod_pb2.Pod
    priority: int
    queued_at: float
    """Monotonic time the pod first entered the queue (for queue -> bound latency)."""
    attempts: int = 0
    backoff_until: float = 0.0
    popped_cycle: int = 0
    seq: int = -1
    """Sequence of the pod's latest heap entry; older entries are stale and skipped."""

    @property
    def key(self) -> PodKey:
        return (self.pod.metadata.namespace, self.pod.metadata.name)


def _spec_changed(old: pod_pb2.Pod, new: pod_pb2.Pod) -> bool:
    return old.spec.SerializeToString(deterministic=True) != new.spec.SerializeToString(
        deterministic=True
    ) or dict(old.metadata.labels) != dict(new.metadata.labels)


@dataclass
class SchedulingQueue:
    priority_of: Callable[[pod_pb2.Pod], int]
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    max_wait: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _pods: dict[PodKey, QueuedPod] = field(default_factory=dict)
    _where: dict[PodKey, str] = field(default_factory=dict)
    """Key -> "active" | "backoff" | "unschedulable" | "flight"."""
    _active: list[tuple[int, float, int, PodKey]] = field(default_factory=list)
    _backoff: list[tuple[float, int, PodKey]] = field(default_factory=list)
    _unschedulable: set[PodKey] = field(default_factory=set)
    _last_scan: float = 0.0
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _cycle: int = 0
    _move_cycle: int = -1
    _closed: bool = False

    # -- informer side ------------------------------------------------------------------------

    def add(self, pod: pod_pb2.Pod) -> None:
        """A pending pod appeared (or is seen again after a relist)."""
        key = (pod.metadata.namespace, pod.metadata.name)
        with self._cond:
            qp = self._pods.get(key)
            if qp is not None:
                self._update_locked(qp, pod)
                return
            qp = QueuedPod(pod, self.priority_of(pod), self.clock())
            self._pods[key] = qp
            self._push_active(qp)

    def update(self, pod: pod_pb2.Pod) -> None:
        self.add(pod)

    def _update_locked(self, qp: QueuedPod, pod: pod_pb2.Pod) -> None:
        changed = _spec_changed(qp.pod, pod)
        qp.pod = pod
        if changed:
            qp.priority = self.priority_of(pod)
            if self._where.get(qp.key) in ("unschedulable", "backoff"):
                self._push_active(qp)

    def delete(self, key: PodKey) -> None:
        """The pod is gone or no longer pending (bound, deleted)."""
        with self._cond:
            self._pods.pop(key, None)
            self._where.pop(key, None)
            self._unschedulable.discard(key)

    def move_all(self) -> None:
        """The cluster changed: give waiting pods another try (after their back-off)."""
        with self._cond:
            self._move_cycle = self._cycle
            now = self.clock()
            for key in list(self._unschedulable):
                qp = self._pods[key]
                if qp.backoff_until <= now:
                    self._push_active(qp)
                else:
                    self._push_backoff(qp)

    # -- scheduler side -----------------------------------------------------------------------

    def pop(self, timeout: float = 0.5) -> QueuedPod | None:
        """The highest-priority, oldest active pod; None after ``timeout`` or on close."""
        deadline = self.clock() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                self._flush_locked()
                while self._active:
                    _, _, seq, key = heapq.heappop(self._active)
                    qp = self._pods.get(key)
                    if qp is None or self._where.get(key) != "active" or seq != qp.seq:
                        continue
                    self._where[key] = "flight"
                    self._cycle += 1
                    qp.popped_cycle = self._cycle
                    qp.attempts += 1
                    return qp
                left = deadline - self.clock()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))

    def done(self, key: PodKey) -> None:
        """The pod was bound (or given up on): it leaves the queue."""
        self.delete(key)

    def requeue(self, qp: QueuedPod, *, unschedulable: bool) -> None:
        """After a failed attempt: back-off, and wait for a change if it fit nowhere."""
        with self._cond:
            if self._where.get(qp.key) != "flight":
                return  # deleted or bound meanwhile
            delay = min(self.max_backoff, self.initial_backoff * 2 ** max(0, qp.attempts - 1))
            qp.backoff_until = self.clock() + delay
            if unschedulable and self._move_cycle < qp.popped_cycle:
                self._where[qp.key] = "unschedulable"
                self._unschedulable.add(qp.key)
            else:
                self._push_backoff(qp)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def depth(self) -> dict[str, int]:
        with self._cond:
            out = {"active": 0, "backoff": 0, "unschedulable": 0, "flight": 0}
            for where in self._where.values():
                out[where] += 1
            return out

    def __len__(self) -> int:
        with self._cond:
            return len(self._pods)

    # -- internals ----------------------------------------------------------------------------

    def _push_active(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self._where[qp.key] = "active"
        self._unschedulable.discard(qp.key)
        heapq.heappush(self._active, (-qp.priority, qp.queued_at, qp.seq, qp.key))
        self._cond.notify()

    def _push_backoff(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self._where[qp.key] = "backoff"
        self._unschedulable.discard(qp.key)
        heapq.heappush(self._backoff, (qp.backoff_until, qp.seq, qp.key))

    def _flush_locked(self) -> None:
        """Back-off that expired -> active; unschedulable for ``max_wait`` -> active."""
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            qp = self._pods.get(key)
            if qp is not None and self._where.get(key) == "backoff" and qp.seq == seq:
                self._push_active(qp)
        if now - self._last_scan >= 1.0:
            self._last_scan = now
            for key in list(self._unschedulable):
                qp = self._pods[key]
                if qp.backoff_until + self.max_wait <= now:
                    self._push_active(qp)
