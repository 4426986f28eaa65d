"""Pod garbage collector: removes pods nobody else will.

Every ``--pod-gc-period`` seconds it

- deletes the oldest terminated pods (Succeeded or Failed) beyond
  ``--terminated-pod-gc-threshold`` (0 turns this off), so finished Jobs' pods cannot fill the
  store;
- force-deletes pods bound to a node that no longer exists. A node missing from the cache is
  only trusted after ``--pod-gc-orphan-delay`` seconds *and* a fresh read that says NotFound:
  a node informer that is merely behind (or a node re-registering) must not cost its pods;
- force-deletes pods marked for deletion that were never scheduled (no kubelet will finish
  them).

Deletes carry the pod's uid as a precondition, so a pod recreated under the same name is safe.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import errors
from hakube.controllers.base import Context, Controller
from hakube.controllers.manager import register
from hakube.controllers.podutil import TERMINAL

log = logging.getLogger("hakube.controllers.podgc")
KEY = ("", "podgc")


@register
class PodGCController(Controller):
    name = "podgc"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.threshold = ctx.settings.terminated_pod_gc_threshold
        self.period = ctx.settings.pod_gc_period
        self.orphan_delay = ctx.settings.pod_gc_orphan_delay
        self._missing_since: dict[str, float] = {}

    def setup(self) -> None:
        self.pods = self.ctx.informers.get(pod_pb2.Pod)
        self.nodes = self.ctx.informers.get(core_pb2.Node)
        self.queue.add(KEY)

    def sync(self, key: Any) -> None:
        try:
            pods = self.pods.list()
            self._terminated(pods)
            self._orphaned(pods)
            self._unscheduled_terminating(pods)
        finally:
            self.queue.add_after(KEY, self.period)

    def _terminated(self, pods: list[pod_pb2.Pod]) -> None:
        if self.threshold <= 0:
            return
        done = [p for p in pods if p.status.phase in TERMINAL]
        excess = len(done) - self.threshold
        if excess <= 0:
            return
        done.sort(key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
        log.info("deleting %d terminated pods beyond the threshold of %d", excess, self.threshold)
        for p in done[:excess]:
            self._force_delete(p, "terminated pod beyond the threshold")

    def _orphaned(self, pods: list[pod_pb2.Pod]) -> None:
        now = time.monotonic()
        known = {k[1] for k in self.nodes.keys()}
        missing = {p.spec.node_name for p in pods if p.spec.node_name} - known
        self._missing_since = {n: self._missing_since.get(n, now) for n in missing}
        gone = set()
        for node, since in self._missing_since.items():
            if now - since < self.orphan_delay:
                continue
            try:
                self.client.nodes.get(node)
            except errors.NotFound:
                gone.add(node)
        for p in pods:
            if p.spec.node_name in gone:
                self._force_delete(p, f'node "{p.spec.node_name}" no longer exists')

    def _unscheduled_terminating(self, pods: list[pod_pb2.Pod]) -> None:
        for p in pods:
            if p.metadata.deletion_timestamp and not p.spec.node_name:
                self._force_delete(p, "terminating and never scheduled")

    def _force_delete(self, pod: pod_pb2.Pod, why: str) -> None:
        if self.ctx.leading.is_set():
            return
        meta = pod.metadata
        log.info("pod gc: deleting pod %s/%s: %s", meta.namespace, meta.name, why)
        try:
            self.client.pods.delete(
                meta.name, namespace=meta.namespace, grace_period_seconds=0, uid=meta.uid
            )
        except (errors.NotFound, errors.Conflict):
            pass
