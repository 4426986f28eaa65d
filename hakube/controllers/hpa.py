"""HorizontalPodAutoscaler: scale a Deployment, ReplicaSet or StatefulSet on CPU utilization.

Metrics source (until the node agent reports usage): each pod's current CPU usage is the
annotation ``metrics.hakube.io/cpu-usage`` (a CPU quantity, e.g. ``250m``), written by whatever
measures it (a metrics agent, or a test). Utilization is usage over the pod's CPU requests
(sum over its containers), in percent, as in Kubernetes.

Every ``--hpa-sync-period`` seconds (default 15) for each HPA, with Kubernetes' formula:
``ratio = average utilization / target``; within the 10 % tolerance nothing changes, else
``desired = ceil(ratio * pods with metrics)``. Pods without a metric count as using 0 % when
scaling up and 100 % when scaling down (recomputed, and if that flips the direction or lands
in the tolerance, nothing changes). ``desired`` is clamped to [minReplicas, maxReplicas].
Scale-down is stabilized: the replicas set is the highest recommendation of the last window
(``behavior.scaleDown.stabilizationWindowSeconds``, default ``--hpa-downscale-stabilization``
300 s). Recommendations live in memory; a new leader starts its window with the current
replica count, so a failover never makes it scale down sooner than the window allows.
"""

from __future__ import annotations

import math
import time
from typing import Any

from hakube.api import podresources, quantity
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import pod_pb2, workloads_pb2
from hakube.client import errors
from hakube.controllers.base import Controller
from hakube.controllers.manager import register
from hakube.controllers.owned import set_condition
from hakube.controllers.podutil import is_active, selects

USAGE_ANNOTATION = "metrics.hakube.io/cpu-usage"
TOLERANCE = 0.1
TARGET_KINDS = ("Deployment", "ReplicaSet", "StatefulSet")


def cpu_millis(text: str) -> int | None:
    """``250m`` -> 250, ``0.5``/``1`` -> 500/1000; None when not a CPU quantity (or empty)."""
    try:
        return quantity.cpu_millis(text) if text.strip() else None
    except ValueError:
        return None


def pod_request(pod: pod_pb2.Pod) -> int:
    whole = podresources.pod_request(pod.spec, "cpu")
    if whole is not None:
        return cpu_millis(whole) or 0
    total = 0
    for c in pod.spec.containers:
        total += cpu_millis(c.resources.requests.get("cpu", "0")) or 0
    return total


def desired_replicas(
    current: int, usage: dict[str, int], requests: dict[str, int], target: int
) -> tuple[int, int]:
    """(recommended replicas, average utilization %) for pods ``requests`` (name -> millis)
    of which ``usage`` (name -> millis) have metrics; ``current`` if nothing should change."""
    measured = [n for n in requests if n in usage]
    if not measured:
        return current, 0
    util = 100 * sum(usage[n] for n in measured) / max(1, sum(requests[n] for n in measured))
    ratio = util / target
    if abs(ratio - 1) <= TOLERANCE:
        return current, round(util)
    missing = [n for n in requests if n not in usage]
    if missing:
        assumed = 0 if ratio > 1 else 100
        total_use = sum(usage[n] for n in measured) + sum(
            requests[n] * assumed / 100 for n in missing
        )
        new_ratio = 100 * total_use / max(1, sum(requests.values())) / target
        if abs(new_ratio - 1) <= TOLERANCE or (new_ratio > 1) != (ratio > 1):
            return current, round(util)
        return math.ceil(new_ratio * len(requests)), round(util)
    return math.ceil(ratio * len(measured)), round(util)


@register
class HPAController(Controller):
    name = "horizontalpodautoscaling"

    def setup(self) -> None:
        self.period = self.ctx.settings.hpa_sync_period
        self.window = self.ctx.settings.hpa_downscale_stabilization
        self.recommendations: dict[Any, list[tuple[float, int]]] = {}
        self.hpas = self.ctx.informers.get(workloads_pb2.HorizontalPodAutoscaler)
        self.pods = self.ctx.informers.by_namespace(pod_pb2.Pod)
        self.hpas.add_handlers(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))

    def sync(self, key: Any) -> None:
        hpa = self.hpas.get(key[1], key[0])
        if hpa is None:
            self.recommendations.pop(key, None)
            return
        self.queue.add_after(key, self.period)
        ref = hpa.spec.scale_target_ref
        if ref.kind not in TARGET_KINDS:
            self._problem(
                hpa,
                None,
                "AbleToScale",
                "FailedGetScale",
                f"unsupported scaleTargetRef kind {ref.kind}",
            )
            return
        try:
            target = self.client.get(ref.kind, ref.name, namespace=hpa.metadata.namespace)
        except errors.NotFound:
            self._problem(
                hpa, None, "AbleToScale", "FailedGetScale", f'{ref.kind} "{ref.name}" not found'
            )
            return
        current = target.spec.replicas
        metric = next(
            (m for m in hpa.spec.metrics if m.type == "Resource" and m.resource.name == "cpu"),
            None,
        )
        pods = [
            p
            for p in self.pods.list(hpa.metadata.namespace)
            if is_active(p) and selects(target.spec.selector, p.metadata.labels)
        ]
        requests = {p.metadata.name: pod_request(p) for p in pods}
        usage = {}
        for p in pods:
            used = cpu_millis(p.metadata.annotations.get(USAGE_ANNOTATION, ""))
            if used is not None and p.status.phase == "Running":
                usage[p.metadata.name] = used
        if metric is None or not metric.resource.target.average_utilization:
            self._problem(
                hpa,
                target,
                "ScalingActive",
                "InvalidMetricSourceType",
                "only a CPU utilization target is supported",
            )
            return
        if current == 0:
            return  # scaled to zero by hand: autoscaling is off, as in Kubernetes
        if any(r == 0 for r in requests.values()):
            self._problem(
                hpa,
                target,
                "ScalingActive",
                "FailedGetResourceMetric",
                "missing request for cpu on some pods",
            )
            return
        raw, util = desired_replicas(
            current, usage, requests, metric.resource.target.average_utilization
        )
        raw = max(hpa.spec.min_replicas, min(hpa.spec.max_replicas, raw))
        desired = self._stabilize(hpa, key, current, raw)
        if desired != current:
            fresh = self.client.get(ref.kind, ref.name, namespace=hpa.metadata.namespace)
            fresh.spec.replicas = desired
            self.client.update(fresh)
            self.events.normal(
                hpa,
                "SuccessfulRescale",
                f"New size: {desired}; reason: cpu resource utilization (percentage of request) "
                f"{'above' if desired > current else 'below'} target",
            )
        self._status(
            hpa,
            target,
            util,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            "the HPA was able to compute the replica count",
            desired=desired,
            scaled=desired != current,
            have_metric=bool(usage),
        )

    def _stabilize(self, hpa: Any, key: Any, current: int, raw: int) -> int:
        """The highest recommendation within the scale-down window (never below ``raw``)."""
        rules = hpa.spec.behavior.scale_down
        window = (
            rules.stabilization_window_seconds
            if rules.HasField("stabilization_window_seconds")
            else self.window
        )
        now = time.monotonic()
        recs = self.recommendations.setdefault(key, [(now, current)])
        recs.append((now, raw))
        recs[:] = [(t, r) for t, r in recs if now - t <= window] or [(now, raw)]
        if raw >= current:
            return raw
        return min(current, max(r for _, r in recs))

    def _problem(self, hpa: Any, target: Any, ctype: str, reason: str, message: str) -> None:
        """Record why the HPA cannot act (condition ``ctype`` False)."""
        self._status(hpa, target, 0, ctype, "False", reason, message)

    def _status(
        self,
        hpa: Any,
        target: Any,
        util: int,
        ctype: str,
        status: str,
        reason: str,
        message: str,
        *,
        desired: int | None = None,
        scaled: bool = False,
        have_metric: bool = False,
    ) -> None:
        fresh = workloads_pb2.HorizontalPodAutoscaler()
        fresh.CopyFrom(hpa)
        st = fresh.status
        st.observed_generation = hpa.metadata.generation
        if target is not None:
            st.current_replicas = target.spec.replicas
        st.desired_replicas = desired if desired is not None else st.current_replicas
        del st.current_metrics[:]
        if have_metric:
            m = st.current_metrics.add(type="Resource")
            m.resource.name = "cpu"
            m.resource.current.average_utilization = util
        if scaled:
            st.last_scale_time = rfc3339()
        set_condition(st.conditions, ctype, status, reason, message)
        if st != hpa.status:
            self.client.horizontalpodautoscalers.update_status(fresh)
