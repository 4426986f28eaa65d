"""Deployment controller: one ReplicaSet per pod template, rolled from old to new.

Each sync claims the Deployment's ReplicaSets (claim.py), finds the one whose template equals
the Deployment's (ignoring ``pod-template-hash``) -- the *new* one, created as
``<deployment>-<hash>`` when missing, with revision max(old)+1 -- and then does one step:

- a **scaling event** (``replicas`` changed; every active ReplicaSet carries the size it was
  last scaled for in ``deployment.kubernetes.io/desired-replicas``) is shared out
  proportionally, so a rollout in progress keeps its proportions;
- **RollingUpdate**: grow the new ReplicaSet within ``maxSurge``, else shrink old ones within
  ``maxUnavailable`` (deployutil.py has the arithmetic);
- **Recreate**: scale every old ReplicaSet to zero, wait until none of their pods is left, then
  create/grow the new one;
- **paused**: only scaling and history clean-up, no rollout.

Then the status and conditions are written (deployment_status.py). Finished rollouts prune old
ReplicaSets beyond ``revisionHistoryLimit``.

Stale cache guard: after scaling a ReplicaSet the controller remembers the resourceVersion it
wrote; a sync that finds an older version in its cache (triggered by some other event before
the informer caught up with our own write) waits instead of scaling the same step twice.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from hakube.api import rollout
from hakube.api.owners import controller_ref
from hakube.api.v1 import pod_pb2, workloads_pb2
from hakube.client import errors
from hakube.controllers import deployment_status as dstatus
from hakube.controllers import deployutil as du
from hakube.controllers.base import Context, Controller, key_of
from hakube.controllers.claim import Claimer
from hakube.controllers.manager import register
from hakube.controllers.owned import delete_exact
from hakube.controllers.podutil import TERMINAL, owner_ref_to, selector_matcher

log = logging.getLogger("hakube.controllers.deployment")

KIND = "Deployment"
API_VERSION = "apps/v1"
_NOT_COPIED = (
    rollout.REVISION,
    du.REVISION_HISTORY,
    du.DESIRED,
    du.MAX_REPLICAS,
    "kubectl.kubernetes.io/last-applied-configuration",
    "hakube.io/applied-fields",  # server-side apply field owners (apiserver.rest.fieldowners)
)


class Requeue(Exception):
    """A write lost a race or the cache is behind; try again soon."""


@register
class DeploymentController(Controller):
    name = "deployment"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.workers = ctx.settings.concurrent_deployment_syncs
        self._written: dict[str, int] = {}
        self._written_lock = threading.Lock()

    def setup(self) -> None:
        inf = self.ctx.informers
        self.rs_by_ns = inf.by_namespace(workloads_pb2.ReplicaSet)
        self.pods_by_owner = inf.by_owner(pod_pb2.Pod)
        self.deploys_by_ns = inf.by_namespace(workloads_pb2.Deployment)
        self.deploys = inf.get(workloads_pb2.Deployment)
        self.deploys.add_handlers(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        inf.get(workloads_pb2.ReplicaSet).add_handlers(
            on_add=self._rs_changed,
            on_update=self._rs_updated,
            on_delete=self._rs_changed,
        )
        inf.get(pod_pb2.Pod).add_handlers(on_delete=self._pod_deleted)

    # -- events -> keys -----------------------------------------------------------------------

    def _owner(self, meta: Any) -> Any | None:
        ref = controller_ref(meta)
        if ref is None or ref.kind != KIND:
            return None
        d = self.deploys.get(ref.name, meta.namespace)
        return d if d is not None and d.metadata.uid == ref.uid else None

    def _rs_changed(self, rs: workloads_pb2.ReplicaSet) -> None:
        d = self._owner(rs.metadata)
        if d is not None:
            self.enqueue(d)
        elif controller_ref(rs.metadata) is None:
            labels = dict(rs.metadata.labels)
            for d in self.deploys_by_ns.list(rs.metadata.namespace):
                if selector_matcher(d.spec.selector)(labels):
                    self.enqueue(d)

    def _rs_updated(self, old: workloads_pb2.ReplicaSet, new: workloads_pb2.ReplicaSet) -> None:
        prev = self._owner(old.metadata)
        if prev is not None and prev is not self._owner(new.metadata):
            self.enqueue(prev)
        self._rs_changed(new)

    def _pod_deleted(self, pod: pod_pb2.Pod) -> None:
        """Recreate waits for old pods to be gone: a pod going may unblock it."""
        ref = controller_ref(pod.metadata)
        if ref is None or ref.kind != "ReplicaSet":
            return
        rs = next(
            (r for r in self.rs_by_ns.list(pod.metadata.namespace) if r.metadata.uid == ref.uid),
            None,
        )
        d = self._owner(rs.metadata) if rs is not None else None
        if d is not None and d.spec.strategy.type == "Recreate":
            self.enqueue(d)

    # -- reconcile ----------------------------------------------------------------------------

    def sync(self, key: Any) -> None:
        ns, name = key
        d = self.deploys.get(name, ns)
        if d is None:
            return
        candidates = self.rs_by_ns.list(ns)
        if self._behind(candidates):
            self.queue.add_after(key, 0.1)
            return
        if d.metadata.deletion_timestamp:
            owned = [
                r
                for r in candidates
                if (ref := controller_ref(r.metadata)) is not None and ref.uid == d.metadata.uid
            ]
            self._write_status(d, owned, self._find_new(d, owned)[0])
            return
        claimer = Claimer(
            self.client,
            d,
            kind=KIND,
            api_version=API_VERSION,
            match=selector_matcher(d.spec.selector),
        )
        rss = claimer.claim(candidates)
        try:
            if d.spec.paused or self._is_scaling_event(d, rss):
                self._sync_scale(d, rss)
            elif d.spec.strategy.type == "Recreate":
                self._recreate(d, rss)
            else:
                self._rolling(d, rss)
        except errors.Conflict as exc:
            raise Requeue(f'deployments "{name}": {exc}') from exc

    def _behind(self, rss: list[workloads_pb2.ReplicaSet]) -> bool:
        with self._written_lock:
            for rs in rss:
                want = self._written.get(rs.metadata.uid)
                if want is None:
                    continue
                if int(rs.metadata.resource_version or 0) < want:
                    return True
                del self._written[rs.metadata.uid]
        return False

    # -- the new ReplicaSet ---------------------------------------------------------------------

    def _find_new(
        self, d: du.Deployment, rss: list[workloads_pb2.ReplicaSet]
    ) -> tuple[workloads_pb2.ReplicaSet | None, list[workloads_pb2.ReplicaSet]]:
        same = [rs for rs in rss if rollout.same_template(rs.spec.template, d.spec.template)]
        same.sort(key=lambda rs: (rs.metadata.creation_timestamp, rs.metadata.name))
        new = same[0] if same else None
        return new, [rs for rs in rss if rs is not new]

    def _new_and_old(
        self, d: du.Deployment, rss: list[workloads_pb2.ReplicaSet], create: bool
    ) -> tuple[workloads_pb2.ReplicaSet | None, list[workloads_pb2.ReplicaSet], bool]:
        """(new RS or None, old RSs, whether it was created now); keeps revisions current."""
        new, old = self._find_new(d, rss)
        want_rev = max((rollout.revision(rs) for rs in old), default=0) + 1
        created = False
        if new is not None:
            if rollout.revision(new) < want_rev:
                new = self._annotate(new, d, revision=want_rev)
        elif create:
            new, created = self._create_new(d, old, want_rev), True
        new_rev = str(rollout.revision(new)) if new is not None else ""
        if new is not None and d.metadata.annotations.get(rollout.REVISION) != new_rev:
            fresh = workloads_pb2.Deployment()
            fresh.CopyFrom(d)
            fresh.metadata.annotations[rollout.REVISION] = str(rollout.revision(new))
            self.client.deployments.update(fresh)
        return new, old, created

    def _create_new(
        self, d: du.Deployment, old: list[workloads_pb2.ReplicaSet], rev: int
    ) -> workloads_pb2.ReplicaSet:
        collisions = d.status.collision_count if d.status.HasField("collision_count") else 0
        h = du.template_hash(d.spec.template, collisions)
        rs = workloads_pb2.ReplicaSet()
        rs.metadata.name = f"{d.metadata.name}-{h}"
        rs.metadata.namespace = d.metadata.namespace
        rs.spec.template.CopyFrom(d.spec.template)
        rs.spec.template.metadata.labels[rollout.HASH_LABEL] = h
        rs.spec.selector.CopyFrom(d.spec.selector)
        rs.spec.selector.match_labels[rollout.HASH_LABEL] = h
        rs.spec.min_ready_seconds = d.spec.min_ready_seconds
        rs.metadata.labels.update(rs.spec.template.metadata.labels)
        for k, v in d.metadata.annotations.items():
            if k not in _NOT_COPIED:
                rs.metadata.annotations[k] = v
        surge, _ = du.fenceposts(d)
        rs.metadata.annotations[rollout.REVISION] = str(rev)
        rs.metadata.annotations[du.DESIRED] = str(d.spec.replicas)
        rs.metadata.annotations[du.MAX_REPLICAS] = str(d.spec.replicas + surge)
        rs.metadata.owner_references.append(owner_ref_to(d, KIND, API_VERSION))
        rs.spec.replicas = du.new_rs_replicas(d, old, rs)
        try:
            made = self.client.replicasets.create(rs)
        except errors.AlreadyExists:
            existing = self.client.replicasets.get(rs.metadata.name, namespace=d.metadata.namespace)
            ref = controller_ref(existing.metadata)
            if (
                ref is not None
                and ref.uid == d.metadata.uid
                and rollout.same_template(existing.spec.template, d.spec.template)
            ):
                return existing
            self._bump_collisions(d)
            raise
        self._remember(made)
        self.events.normal(
            d,
            "ScalingReplicaSet",
            f"Scaled up replica set {made.metadata.name} to {made.spec.replicas}",
        )
        return made

    def _bump_collisions(self, d: du.Deployment) -> None:
        fresh = workloads_pb2.Deployment()
        fresh.CopyFrom(d)
        fresh.status.collision_count = (
            d.status.collision_count if d.status.HasField("collision_count") else 0
        ) + 1
        self.client.deployments.update_status(fresh)

    def _annotate(
        self, rs: workloads_pb2.ReplicaSet, d: du.Deployment, *, revision: int
    ) -> workloads_pb2.ReplicaSet:
        out = workloads_pb2.ReplicaSet()
        out.CopyFrom(rs)
        old_rev = rs.metadata.annotations.get(rollout.REVISION)
        out.metadata.annotations[rollout.REVISION] = str(revision)
        if old_rev:
            hist = [h for h in rs.metadata.annotations.get(du.REVISION_HISTORY, "").split(",") if h]
            out.metadata.annotations[du.REVISION_HISTORY] = ",".join([*hist, old_rev])
        for k, v in d.metadata.annotations.items():
            if k not in _NOT_COPIED:
                out.metadata.annotations[k] = v
        return self._write_rs(rs, out)

    def _write_rs(
        self, cached: workloads_pb2.ReplicaSet, out: workloads_pb2.ReplicaSet
    ) -> workloads_pb2.ReplicaSet:
        """Update with compare-and-swap on the version the decision was made from. A Conflict
        caused only by status writes (the ReplicaSet controller reports constantly during a
        rollout) is retried on the fresh version: the decision read spec and metadata only, so
        it still holds. Anything else changed: Conflict, and the sync starts over."""
        for _ in range(5):
            try:
                made = self.client.replicasets.update(out)
                self._remember(made)
                return made
            except errors.Conflict:
                fresh = self.client.replicasets.get(
                    cached.metadata.name, namespace=cached.metadata.namespace
                )
                if not _same_but_status(cached, fresh):
                    raise
                out.metadata.resource_version = fresh.metadata.resource_version
        raise errors.Conflict(f'replicasets "{cached.metadata.name}": status kept changing')

    def _remember(self, rs: workloads_pb2.ReplicaSet) -> None:
        with self._written_lock:
            self._written[rs.metadata.uid] = int(rs.metadata.resource_version or 0)

    # -- scaling ------------------------------------------------------------------------------

    def _scale(
        self, rs: workloads_pb2.ReplicaSet, n: int, d: du.Deployment
    ) -> workloads_pb2.ReplicaSet:
        surge, _ = du.fenceposts(d)
        ann = {du.DESIRED: str(d.spec.replicas), du.MAX_REPLICAS: str(d.spec.replicas + surge)}
        if rs.spec.replicas == n and all(
            rs.metadata.annotations.get(k) == v for k, v in ann.items()
        ):
            return rs
        out = workloads_pb2.ReplicaSet()
        out.CopyFrom(rs)
        out.spec.replicas = n
        out.metadata.annotations.update(ann)
        made = self._write_rs(rs, out)
        if n != rs.spec.replicas:
            verb = "up" if n > rs.spec.replicas else "down"
            self.events.normal(
                d,
                "ScalingReplicaSet",
                f"Scaled {verb} replica set {rs.metadata.name} to {n} from {rs.spec.replicas}",
            )
        return made

    def _is_scaling_event(self, d: du.Deployment, rss: list[workloads_pb2.ReplicaSet]) -> bool:
        for rs in rss:
            if rs.spec.replicas > 0 and rs.metadata.annotations.get(du.DESIRED) != str(
                d.spec.replicas
            ):
                return True
        return False

    def _sync_scale(self, d: du.Deployment, rss: list[workloads_pb2.ReplicaSet]) -> None:
        new, old, _ = self._new_and_old(d, rss, create=False)
        active = [rs for rs in rss if rs.spec.replicas > 0]
        if len(active) <= 1:
            target = active[0] if active else (new or max(old, key=rollout.revision, default=None))
            if target is not None:
                self._scale(target, d.spec.replicas, d)
        elif (
            new is not None
            and new.spec.replicas == d.spec.replicas
            and new.status.available_replicas == d.spec.replicas
        ):
            for rs in old:
                self._scale(rs, 0, d)
        elif d.spec.strategy.type == "RollingUpdate":
            sizes = du.proportions(d, active, new)
            for rs in active:
                self._scale(rs, sizes[rs.metadata.name], d)
        if d.spec.paused:
            self._cleanup(d, old)
        self._write_status(d, rss, new)

    # -- strategies ---------------------------------------------------------------------------

    def _rolling(self, d: du.Deployment, rss: list[workloads_pb2.ReplicaSet]) -> None:
        new, old, created = self._new_and_old(d, rss, create=True)
        assert new is not None
        all_rss = [*old, new]
        want = du.new_rs_replicas(d, all_rss, new)
        if want != new.spec.replicas:
            new = self._scale(new, want, d)
            self._write_status(d, [*old, new], new, created=created)
            return
        plan = du.old_scale_down_plan(d, old, new)
        if plan:
            old = [
                self._scale(rs, plan[rs.metadata.name], d) if rs.metadata.name in plan else rs
                for rs in old
            ]
            self._write_status(d, [*old, new], new, created=created)
            return
        st = self._write_status(d, all_rss, new, created=created)
        if dstatus.complete(d, st):
            self._cleanup(d, old)

    def _recreate(self, d: du.Deployment, rss: list[workloads_pb2.ReplicaSet]) -> None:
        new, old, _ = self._new_and_old(d, rss, create=False)
        if any(rs.spec.replicas > 0 for rs in old):
            old = [self._scale(rs, 0, d) for rs in old]
            self._write_status(d, [*old, *([new] if new else [])], new)
            return
        for pod in (p for rs in old for p in self.pods_by_owner.owned(rs)):
            if pod.status.phase not in TERMINAL:
                self._write_status(d, rss, new)
                return  # old pods still going; their deletion re-queues us
        created = False
        if new is None:
            new, old, created = self._new_and_old(d, rss, create=True)
            assert new is not None
        if new.spec.replicas != d.spec.replicas:
            new = self._scale(new, d.spec.replicas, d)
        st = self._write_status(d, [*old, new], new, created=created)
        if dstatus.complete(d, st):
            self._cleanup(d, old)

    def _cleanup(self, d: du.Deployment, old: list[workloads_pb2.ReplicaSet]) -> None:
        """Delete the oldest idle ReplicaSets beyond revisionHistoryLimit."""
        idle = [
            rs
            for rs in old
            if rs.spec.replicas == 0
            and rs.status.replicas == 0
            and rs.status.observed_generation >= rs.metadata.generation
            and not rs.metadata.deletion_timestamp
        ]
        extra = len(idle) - d.spec.revision_history_limit
        for rs in sorted(idle, key=rollout.revision)[: max(0, extra)]:
            delete_exact(self.client, rs)

    # -- status -------------------------------------------------------------------------------

    def _write_status(
        self,
        d: du.Deployment,
        rss: list[workloads_pb2.ReplicaSet],
        new: workloads_pb2.ReplicaSet | None,
        *,
        created: bool = False,
    ) -> workloads_pb2.DeploymentStatus:
        now = time.time()
        st = dstatus.compute(d, rss, new, now, created=created)
        wait = dstatus.seconds_to_deadline(d, st, now)
        if wait >= 0:
            self.queue.add_after(key_of(d), wait + 1.0)
        if st.SerializeToString(deterministic=True) != d.status.SerializeToString(
            deterministic=True
        ):
            if (
                st.conditions
                and any(c.reason == rollout.TIMED_OUT for c in st.conditions)
                and not any(c.reason == rollout.TIMED_OUT for c in d.status.conditions)
            ):
                self.events.warning(
                    d,
                    rollout.TIMED_OUT,
                    f'Deployment "{d.metadata.name}" has timed out progressing',
                )
            out = workloads_pb2.Deployment()
            out.CopyFrom(d)
            out.status.CopyFrom(st)
            out.metadata.resource_version = ""
            try:
                self.client.deployments.update_status(out)
            except (errors.NotFound, errors.Conflict):
                pass
        if (
            new is not None
            and d.metadata.annotations.get(du.AUTO_ROLLBACK) == "true"
            and dstatus.timed_out_on(st, new.metadata.name)
            and new.metadata.annotations.get(du.PROGRESS_FAILED) != "true"
        ):
            self._auto_rollback(d, [rs for rs in rss if rs is not new], new)
        return st

    def _auto_rollback(
        self, d: du.Deployment, old: list[workloads_pb2.ReplicaSet], new: workloads_pb2.ReplicaSet
    ) -> None:
        """Going beyond Kubernetes (opt-in): put the last good revision's template back."""
        target = du.rollback_target(old, new)
        if target is None:
            self.events.warning(d, "RollbackNotPossible", "no earlier revision to roll back to")
            return
        fresh = workloads_pb2.Deployment()
        fresh.CopyFrom(d)
        fresh.spec.template.CopyFrom(rollout.without_hash(target.spec.template))
        self.client.deployments.update(fresh)  # CAS: a user's newer change wins
        for _ in range(5):  # mark the failed revision (status writes race with us)
            failed = self.client.replicasets.get(
                new.metadata.name, namespace=new.metadata.namespace
            )
            failed.metadata.annotations[du.PROGRESS_FAILED] = "true"
            try:
                self._remember(self.client.replicasets.update(failed))
                break
            except errors.Conflict:
                continue
        self.events.normal(
            d,
            "DeploymentRollback",
            f'Rolled back deployment "{d.metadata.name}" to revision {rollout.revision(target)} '
            f"after revision {rollout.revision(new)} exceeded its progress deadline",
        )


def _same_but_status(a: workloads_pb2.ReplicaSet, b: workloads_pb2.ReplicaSet) -> bool:
    ma, mb = type(a.metadata)(), type(b.metadata)()
    ma.CopyFrom(a.metadata)
    mb.CopyFrom(b.metadata)
    ma.resource_version = mb.resource_version = ""
    return ma == mb and a.spec == b.spec
