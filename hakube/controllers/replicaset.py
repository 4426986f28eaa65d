"""ReplicaSet controller: keeps ``spec.replicas`` pods matching the selector.

Each sync claims the active pods it owns and the namespace's orphans, both found by index
(ownerindex.py) -- adopting matching orphans, releasing owned pods that stopped matching, see
claim.py, then -- only when every create and delete of the
previous sync has been observed (expectations.py) -- creates the missing pods from the template
or deletes the surplus, worst first (podutil.deletion_rank), and finally writes the status.

Creates go out in batches of 1, 2, 4, ... (Kubernetes' slow start): a ReplicaSet whose pods are
all refused (quota, a bad template) fails after one request, not after ``replicas`` of them, and
the first failure stops the rest. At most ``--replicaset-burst`` pods are created or deleted per
sync; the rest follow on the next one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hakube.api.owners import controller_ref
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import meta_pb2, pod_pb2, workloads_pb2
from hakube.client import errors
from hakube.controllers.base import Context, Controller, key_of
from hakube.controllers.claim import Claimer
from hakube.controllers.expectations import Expectations
from hakube.controllers.manager import register
from hakube.controllers.owned import pod_from_template
from hakube.controllers.podutil import (
    deletion_rank,
    is_active,
    is_available,
    is_ready,
    selector_matcher,
)

log = logging.getLogger("hakube.controllers.replicaset")

KIND = "ReplicaSet"
API_VERSION = "apps/v1"


class SyncError(Exception):
    """Some creates or deletes failed; the sync is retried with back-off."""


def slow_start(
    pool: ThreadPoolExecutor, count: int, fn: Callable[[], None], initial: int = 1
) -> tuple[int, Exception | None]:
    """Call ``fn`` ``count`` times in concurrent batches doubling from ``initial``; stop after
    the first batch with a failure. Returns (successes, first error)."""
    done, batch = 0, max(1, initial)
    while done < count:
        n = min(batch, count - done)
        futures = [pool.submit(fn) for _ in range(n)]
        first: Exception | None = None
        for f in futures:
            exc = f.exception()
            if exc is None:
                done += 1
            elif first is None:
                first = exc  # type: ignore[assignment]
        if first is not None:
            return done, first
        batch *= 2
    return done, None


@register
class ReplicaSetController(Controller):
    name = "replicaset"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.workers = ctx.settings.concurrent_replicaset_syncs
        self.burst = ctx.settings.replicaset_burst
        self.expectations = Expectations()
        self.pool = ThreadPoolExecutor(64, thread_name_prefix="replicaset-write")

    def setup(self) -> None:
        # A sync reads the pods it owns and its namespace's orphans, by index: listing the
        # namespace cost 30,000 pod reads per sync in the 30,000-pod scale run.
        self.pods_by_owner = self.ctx.informers.by_owner(pod_pb2.Pod)
        self.rs_by_ns = self.ctx.informers.by_namespace(workloads_pb2.ReplicaSet)
        self.sets = self.ctx.informers.get(workloads_pb2.ReplicaSet)
        self.sets.add_handlers(
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=lambda rs: self.expectations.forget(key_of(rs)),
        )
        self.ctx.informers.get(pod_pb2.Pod).add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    def stop(self) -> None:
        super().stop()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- pod events -> keys -----------------------------------------------------------------

    def _owner_key(self, pod: pod_pb2.Pod) -> tuple[str, str] | None:
        """The key of the ReplicaSet controlling ``pod`` if it is one we know (uid checked)."""
        ref = controller_ref(pod.metadata)
        if ref is None or ref.kind != KIND:
            return None
        rs = self.sets.get(ref.name, pod.metadata.namespace)
        if rs is None or rs.metadata.uid != ref.uid:
            return None
        return key_of(rs)

    def _matching(self, pod: pod_pb2.Pod) -> list[Any]:
        labels = dict(pod.metadata.labels)
        return [
            rs
            for rs in self.rs_by_ns.list(pod.metadata.namespace)
            if selector_matcher(rs.spec.selector)(labels)
        ]

    def _pod_added(self, pod: pod_pb2.Pod) -> None:
        if pod.metadata.deletion_timestamp:
            self._pod_deleted(pod)  # e.g. seen first in a relist, already going
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_ref(pod.metadata) is None:
            for rs in self._matching(pod):
                self.enqueue(rs)

    def _pod_updated(self, old: pod_pb2.Pod, new: pod_pb2.Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        if new.metadata.deletion_timestamp:
            self._pod_deleted(new)
            return
        old_key, key = self._owner_key(old), self._owner_key(new)
        if old_key is not None and old_key != key:
            self.queue.add(old_key)
        if key is not None:
            self.queue.add(key)
            rs = self.sets.get(key[1], key[0])
            mrs = rs.spec.min_ready_seconds if rs is not None else 0
            if mrs > 0 and is_ready(new) and not is_ready(old):
                self.queue.add_after(key, mrs + 0.5)  # becomes available then
        elif controller_ref(new.metadata) is None and (
            old.metadata.labels != new.metadata.labels or old_key is not None
        ):
            for rs in self._matching(new):
                self.enqueue(rs)

    def _pod_deleted(self, pod: pod_pb2.Pod) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, key_of(pod))
            self.queue.add(key)

    # -- reconcile ----------------------------------------------------------------------------

    def sync(self, key: Any) -> None:
        ns, name = key
        rs = self.sets.get(name, ns)
        if rs is None:
            self.expectations.forget(key)
            return
        satisfied = self.expectations.satisfied(key)
        active = [p for p in self.pods_by_owner.candidates(rs) if is_active(p)]
        claimer = Claimer(
            self.client,
            rs,
            kind=KIND,
            api_version=API_VERSION,
            match=selector_matcher(rs.spec.selector),
        )
        owned = claimer.claim(active)
        failure: Exception | None = None
        if satisfied and not rs.metadata.deletion_timestamp:
            try:
                self._manage(rs, owned, key)
            except SyncError as exc:
                failure = exc
        now = time.time()
        self._write_status(rs, owned, failure, now)
        if failure is not None:
            raise failure
        mrs = rs.spec.min_ready_seconds
        if mrs > 0 and any(is_ready(p) and not is_available(p, mrs, now) for p in owned):
            self.queue.add_after(key, mrs)

    def _manage(self, rs: workloads_pb2.ReplicaSet, owned: list[pod_pb2.Pod], key: Any) -> None:
        diff = len(owned) - rs.spec.replicas
        if diff < 0:
            want = min(-diff, self.burst)
            self.expectations.expect_creations(key, want)
            created, err = slow_start(self.pool, want, lambda: self._create(rs))
            if err is not None:
                self.expectations.creation_failed(key, want - created)
                self.events.warning(rs, "FailedCreate", f"Error creating: {err}")
                raise SyncError(f'replicasets "{rs.metadata.name}": creating pods: {err}')
        elif diff > 0:
            victims = sorted(owned, key=deletion_rank)[: min(diff, self.burst)]
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            results = list(self.pool.map(lambda p: self._delete(rs, p), victims))
            failed = [e for e in results if e is not None]
            if failed:
                raise SyncError(f'replicasets "{rs.metadata.name}": deleting pods: {failed[0]}')

    def _create(self, rs: workloads_pb2.ReplicaSet) -> None:
        if self.ctx.leading.is_set():
            raise SyncError("no longer leading")
        pod = self.writes.create(pod_from_template(rs.spec.template, rs))
        self.events.normal(rs, "SuccessfulCreate", f"Created pod: {pod.metadata.name}")

    def _delete(self, rs: workloads_pb2.ReplicaSet, pod: pod_pb2.Pod) -> Exception | None:
        key = key_of(rs)
        if self.ctx.leading.is_set():
            self.expectations.deletion_observed(key, key_of(pod))
            return SyncError("no longer leading")
        try:
            self.writes.delete(pod, uid=pod.metadata.uid)
        except (errors.NotFound, errors.Conflict):
            self.expectations.deletion_observed(key, key_of(pod))  # already gone or replaced
            return None
        except errors.HakubeError as exc:
            self.expectations.deletion_observed(key, key_of(pod))
            self.events.warning(rs, "FailedDelete", f"Error deleting: {exc}")
            return exc
        self.events.normal(rs, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
        return None

    def _write_status(
        self,
        rs: workloads_pb2.ReplicaSet,
        owned: list[pod_pb2.Pod],
        failure: Exception | None,
        now: float,
    ) -> None:
        # One pass over the owned pods (a sync of a 1,000-replica set counts 1,000 of them).
        template = dict(rs.spec.template.metadata.labels).items()
        mrs = rs.spec.min_ready_seconds
        labeled = ready = available = 0
        for p in owned:
            if template <= dict(p.metadata.labels).items():
                labeled += 1
            if is_ready(p):
                ready += 1
                if mrs <= 0 or is_available(p, mrs, now):
                    available += 1
        st = workloads_pb2.ReplicaSetStatus(
            replicas=len(owned),
            fully_labeled_replicas=labeled,
            ready_replicas=ready,
            available_replicas=available,
            observed_generation=rs.metadata.generation,
        )
        old_failure = next((c for c in rs.status.conditions if c.type == "ReplicaFailure"), None)
        if failure is not None:
            reason = "FailedCreate" if "creating" in str(failure) else "FailedDelete"
            st.conditions.append(
                meta_pb2.Condition(
                    type="ReplicaFailure",
                    status="True",
                    reason=reason,
                    message=str(failure),
                    last_transition_time=old_failure.last_transition_time
                    if old_failure
                    else rfc3339(now),
                )
            )
        if st.SerializeToString(deterministic=True) == rs.status.SerializeToString(
            deterministic=True
        ):
            return
        out = workloads_pb2.ReplicaSet()
        out.CopyFrom(rs)
        out.status.CopyFrom(st)
        out.metadata.resource_version = ""
        try:
            self.client.replicasets.update_status(out)
        except (errors.NotFound, errors.Conflict):  # gone, or replaced under the same name
            pass
