"""StatefulSet: pods with stable names, network identities and storage.

Pod ``i`` is named ``<set>-<i>``, has ``hostname`` ``<set>-<i>`` and ``subdomain``
``spec.serviceName`` (the headless Service that gives it a DNS name), and for each
volumeClaimTemplate ``t`` mounts the PVC ``<t>-<set>-<i>``. PVCs are created before their pod
and never deleted by this controller, so a replaced or rescheduled pod finds its data again.

``OrderedReady`` (default): pods are created one at a time in ordinal order, each only once all
lower ones are Running and Ready; scale-down removes the highest ordinal first, one at a time,
and only while the rest are ready. ``Parallel``: all at once, both ways.

Rolling update: the revision of a template is ``<set>-<hash>`` (label
``controller-revision-hash`` on each pod). Once every pod exists and is ready, the highest
ordinal ``>= partition`` that is not at the update revision is deleted and recreated from the
new template; the next waits until it is ready again. Pods below the partition stay at the
current revision -- if one must be recreated, it is made from that revision's template, kept
in ConfigMap ``<set>-<hash>`` (owned by the set; a stand-in for ControllerRevision objects,
pruned to the current and update revisions). ``currentRevision`` becomes the update revision
when every pod runs it. ``OnDelete`` replaces only pods someone deleted.
"""

from __future__ import annotations

import re
from typing import Any

from hakube.api.v1 import core_pb2, meta_pb2, pod_pb2, workloads_pb2
from hakube.client import errors
from hakube.controllers.base import Controller
from hakube.controllers.deployutil import REVISION_HASH_LABEL as HASH_LABEL
from hakube.controllers.deployutil import template_hash
from hakube.controllers.expectations import PodNameExpectations
from hakube.controllers.manager import register
from hakube.controllers.owned import PodControl, on_any_change, owner_key, pod_from_template
from hakube.controllers.podutil import controller_uid, owner_reference, pod_ready

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
REVISION_OF = "statefulset.hakube.io/revision-of"


def ordinal(sts: workloads_pb2.StatefulSet, pod: pod_pb2.Pod) -> int:
    """The pod's ordinal, or -1 when its name is not ``<set>-<n>``."""
    m = re.fullmatch(re.escape(sts.metadata.name) + r"-(\d+)", pod.metadata.name)
    return int(m.group(1)) if m else -1


def claim_name(template: core_pb2.PersistentVolumeClaim, sts: Any, i: int) -> str:
    return f"{template.metadata.name}-{sts.metadata.name}-{i}"


def revision_of(pod: pod_pb2.Pod) -> str:
    return str(pod.metadata.labels.get(HASH_LABEL, ""))


@register
class StatefulSetController(Controller):
    name = "statefulset"
    workers = 2

    def setup(self) -> None:
        self.expectations = PodNameExpectations()
        self._saved: set[str] = set()
        self._kept: dict[str, set[str]] = {}
        self.control = PodControl(self.writes, self.events, self.expectations)
        self.sets = self.ctx.informers.get(workloads_pb2.StatefulSet)
        self.pods = self.ctx.informers.get(pod_pb2.Pod)
        self.owned_pods = self.ctx.informers.by_owner(pod_pb2.Pod)
        self.sets.add_handlers(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        on_any_change(self.pods, self._pod_changed)

    def _pod_changed(self, pod: pod_pb2.Pod) -> None:
        key = owner_key(pod, "StatefulSet")
        if key is not None:
            self.queue.add(key)

    # -- the reconcile ------------------------------------------------------------------------

    def sync(self, key: Any) -> None:
        sts = self.sets.get(key[1], key[0])
        if sts is None or sts.metadata.deletion_timestamp:
            return
        owned = self.owned_pods.owned(sts)
        if not self.expectations.met(key, owned):
            self.queue.add_after(key, 0.2)
            return
        update_rev = f"{sts.metadata.name}-{template_hash(sts.spec.template)}"
        current_rev = sts.status.current_revision or update_rev
        pods = {ordinal(sts, p): p for p in owned if ordinal(sts, p) >= 0}
        self._save_revision(sts, update_rev, keep={current_rev, update_rev})
        self._reconcile(sts, pods, current_rev, update_rev)
        self._update_status(sts, pods, current_rev, update_rev)

    def _reconcile(
        self,
        sts: workloads_pb2.StatefulSet,
        pods: dict[int, pod_pb2.Pod],
        current_rev: str,
        update_rev: str,
    ) -> None:
        """One step towards the spec; OrderedReady returns after any change or wait."""
        ordered = sts.spec.pod_management_policy != "Parallel"
        replicas = sts.spec.replicas
        partition = sts.spec.update_strategy.rolling_update.partition
        for i in range(replicas):
            pod = pods.get(i)
            if pod is None:
                rev = update_rev if i >= partition else current_rev
                self._create(sts, i, rev, update_rev, pods)
                if ordered:
                    return
            elif pod.status.phase == "Failed":
                self.control.delete(sts, pod)
                if ordered:
                    return
            elif ordered and not pod_ready(pod):
                return  # wait: the next ordinal needs this one Running and Ready
        condemned = sorted((i for i in pods if i >= replicas), reverse=True)
        for i in condemned:
            if ordered and pods[i].metadata.deletion_timestamp:
                return
            self.control.delete(sts, pods[i])
            if ordered:
                return
        if sts.spec.update_strategy.type == "OnDelete":
            return
        live = [pods.get(i) for i in range(replicas)]
        if any(p is None or p.metadata.deletion_timestamp or not pod_ready(p) for p in live):
            return
        for i in range(replicas - 1, partition - 1, -1):
            pod = pods[i]
            if revision_of(pod) != update_rev:
                self.control.delete(sts, pod)
                return

    def _create(
        self,
        sts: workloads_pb2.StatefulSet,
        i: int,
        rev: str,
        update_rev: str,
        pods: dict[int, pod_pb2.Pod],
    ) -> None:
        template = sts.spec.template
        if rev != update_rev:
            old = self._revision_template(sts, rev)
            if old is None:
                rev = update_rev  # the old revision's record is gone: use the new one
            else:
                template = old
        name = f"{sts.metadata.name}-{i}"
        pod = pod_from_template(template, sts, name=name)
        pod.metadata.labels[HASH_LABEL] = rev
        pod.metadata.labels[POD_NAME_LABEL] = name
        pod.spec.hostname = name
        pod.spec.subdomain = sts.spec.service_name
        for tpl in sts.spec.volume_claim_templates:
            claim = self._ensure_claim(sts, tpl, i)
            kept = [v for v in pod.spec.volumes if v.name != tpl.metadata.name]
            del pod.spec.volumes[:]
            pod.spec.volumes.extend(kept)
            pod.spec.volumes.add(name=tpl.metadata.name).persistent_volume_claim.claim_name = claim
        try:
            self.control.create(sts, pod)
        except errors.AlreadyExists:
            raise RuntimeError(f'pod "{name}" exists but is not controlled by this set') from None

    # -- revisions: the templates pods below the partition are made from ----------------------

    def _save_revision(self, sts: workloads_pb2.StatefulSet, rev: str, keep: set[str]) -> None:
        """Record the template of ``rev`` as ConfigMap ``rev`` (owned by the set), and drop
        records of revisions no longer in ``keep`` -- a stand-in for ControllerRevisions."""
        ns = sts.metadata.namespace
        if rev not in self._saved:
            cm = core_pb2.ConfigMap(
                metadata=meta_pb2.ObjectMeta(
                    name=rev, namespace=ns, labels={REVISION_OF: sts.metadata.name}
                ),
                binary_data={"template": sts.spec.template.SerializeToString(deterministic=True)},
            )
            cm.metadata.owner_references.append(owner_reference(sts))
            try:
                self.client.configmaps.create(cm)
            except errors.AlreadyExists:
                pass
            self._saved.add(rev)
        if self._kept.get(sts.metadata.uid) == keep:
            return  # pruned for this pair already
        self._kept[sts.metadata.uid] = set(keep)
        for cm in self.client.configmaps.list(
            namespace=ns, label_selector=f"{REVISION_OF}={sts.metadata.name}"
        ).items:
            if cm.metadata.name not in keep and controller_uid(cm) == sts.metadata.uid:
                try:
                    self.client.configmaps.delete(cm.metadata.name, namespace=ns)
                except errors.NotFound:
                    pass
                self._saved.discard(cm.metadata.name)

    def _revision_template(
        self, sts: workloads_pb2.StatefulSet, rev: str
    ) -> pod_pb2.PodTemplateSpec | None:
        try:
            cm = self.client.configmaps.get(rev, namespace=sts.metadata.namespace)
        except errors.NotFound:
            return None
        if controller_uid(cm) != sts.metadata.uid or "template" not in cm.binary_data:
            return None
        template = pod_pb2.PodTemplateSpec()
        template.ParseFromString(cm.binary_data["template"])
        return template

    def _ensure_claim(
        self, sts: workloads_pb2.StatefulSet, tpl: core_pb2.PersistentVolumeClaim, i: int
    ) -> str:
        name = claim_name(tpl, sts, i)
        pvc = core_pb2.PersistentVolumeClaim()
        pvc.CopyFrom(tpl)
        pvc.metadata.CopyFrom(
            meta_pb2.ObjectMeta(
                name=name,
                namespace=sts.metadata.namespace,
                labels={**tpl.metadata.labels, **sts.spec.selector.match_labels},
            )
        )
        try:
            self.client.persistentvolumeclaims.create(pvc)
            self.events.normal(
                sts, "SuccessfulCreate", f"create Claim {name} for Pod {sts.metadata.name}-{i}"
            )
        except errors.AlreadyExists:
            pass  # kept from an earlier pod of this ordinal: that is the point
        return name

    def _update_status(
        self,
        sts: workloads_pb2.StatefulSet,
        pods: dict[int, pod_pb2.Pod],
        current_rev: str,
        update_rev: str,
    ) -> None:
        live = [p for p in pods.values() if not p.metadata.deletion_timestamp]
        st = workloads_pb2.StatefulSetStatus()
        st.CopyFrom(sts.status)
        st.observed_generation = sts.metadata.generation
        st.replicas = len(live)
        st.ready_replicas = sum(pod_ready(p) for p in live)
        st.available_replicas = st.ready_replicas
        st.updated_replicas = sum(revision_of(p) == update_rev for p in live)
        st.current_replicas = sum(revision_of(p) == current_rev for p in live)
        st.update_revision = update_rev
        done = st.updated_replicas == sts.spec.replicas == len(live) and st.ready_replicas == len(
            live
        )
        st.current_revision = update_rev if done else current_rev
        if st.current_revision == update_rev:
            st.current_replicas = st.updated_replicas
        if st == sts.status:
            return
        fresh = workloads_pb2.StatefulSet()
        fresh.CopyFrom(sts)
        fresh.status.CopyFrom(st)
        self.client.statefulsets.update_status(fresh)
