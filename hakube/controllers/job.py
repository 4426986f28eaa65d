"""Job: run pods until ``completions`` of them succeed, at most ``parallelism`` at a time.

Counting: the Job's pods are those it controls (ownerReference uid). ``succeeded``/``failed``
count finished pods (with ``restartPolicy: OnFailure`` a container restart counts as a failure,
as in Kubernetes); the status never counts down, so a finished pod removed by pod GC is not
run again. A Job without ``completions`` (work-queue style) is complete once a pod has
succeeded and none is still active.

Failure: more failures than ``backoffLimit`` (reason BackoffLimitExceeded), or running longer
than ``activeDeadlineSeconds`` since ``startTime`` (DeadlineExceeded) makes the Job Failed and
its active pods are deleted. After a failure, the next pod waits ``base * 2^(failures-1)``
seconds (``--job-backoff-base`` 10 s, capped at ``--job-backoff-max`` 6 min) from the last
failure. A finished Job with ``ttlSecondsAfterFinished`` is deleted (with its pods) that long
after it finished. ``suspend: true`` deletes the active pods and holds.

A ``podFailurePolicy`` decides per failed pod (``jobfailure``): fail the Job at once, fail the
pod's index, ignore the failure (not counted, pod replaced), or count it. ``completionMode:
Indexed`` runs one pod per completion index, with ``backoffLimitPerIndex`` giving each index a
failure budget of its own (``jobindex``); the Job then fails (``FailedIndexes``) only once every
index has succeeded or failed, or at once when more than ``maxFailedIndexes`` have failed.

No duplicate runs: pods the controller created are *expected* until its cache shows them, so a
sync never counts too few and creates extras; a new leader starts from a fresh list of pods.
"""

from __future__ import annotations

import time
from typing import Any

from hakube.api.conditions import is_true
from hakube.api.timestamps import parse_time, rfc3339
from hakube.api.v1 import pod_pb2, workloads_pb2
from hakube.client import errors
from hakube.controllers import jobindex
from hakube.controllers.base import Controller
from hakube.controllers.expectations import PodNameExpectations
from hakube.controllers.jobfailure import judge
from hakube.controllers.manager import register
from hakube.controllers.owned import (
    PodControl,
    delete_exact,
    live_copy,
    on_any_change,
    owner_enqueuer,
    pod_from_template,
    set_condition,
)
from hakube.controllers.podutil import failed_at, is_active, pod_ready


def finished(job: workloads_pb2.Job) -> bool:
    return is_true(job.status.conditions, "Complete") or is_true(job.status.conditions, "Failed")


def _restarts(pod: pod_pb2.Pod) -> int:
    return sum(c.restart_count for c in pod.status.container_statuses)


def deletion_order(pods: list[pod_pb2.Pod]) -> list[pod_pb2.Pod]:
    """Which pods to delete first: not-ready before ready, newest before oldest."""
    newest = sorted(pods, key=lambda p: p.metadata.creation_timestamp, reverse=True)
    return sorted(newest, key=pod_ready)


@register
class JobController(Controller):
    name = "job"
    workers = 2

    def setup(self) -> None:
        self.backoff_base = self.ctx.settings.job_backoff_base
        self.backoff_max = self.ctx.settings.job_backoff_max
        self.expectations = PodNameExpectations()
        self.control = PodControl(self.writes, self.events, self.expectations)
        self.jobs = self.ctx.informers.get(workloads_pb2.Job)
        self.pods = self.ctx.informers.get(pod_pb2.Pod)
        self.owned_pods = self.ctx.informers.by_owner(pod_pb2.Pod)
        self.jobs.add_handlers(
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=lambda job: self.expectations.forget(
                (job.metadata.namespace, job.metadata.name)
            ),
        )
        on_any_change(self.pods, owner_enqueuer(self.queue, "Job"))

    # -- the reconcile ------------------------------------------------------------------------

    def sync(self, key: Any) -> None:
        found = live_copy(self.jobs, key)
        if found is None:
            return
        cached, job = found
        pods = self.owned_pods.owned(job)
        if not self.expectations.met(key, pods):
            self.queue.add_after(key, 0.2)
            return
        now = time.time()
        if finished(job):
            self._delete_pods(job, [p for p in pods if is_active(p)])
            self._maybe_expire(job, now)
            return
        active = [p for p in pods if is_active(p)]
        failed_pods = [p for p in pods if p.status.phase == "Failed"]
        verdicts = (
            {p.metadata.uid: judge(job, p) for p in failed_pods}
            if job.spec.HasField("pod_failure_policy")
            else {}
        )
        counted = [
            p
            for p in failed_pods
            if p.metadata.uid not in verdicts or verdicts[p.metadata.uid].action != "Ignore"
        ]
        fail_job = next((v for v in verdicts.values() if v.action == "FailJob"), None)
        indexes = jobindex.view(job, pods, verdicts) if self._indexed(job) else None
        if indexes is not None:
            succeeded = len(indexes.succeeded)
        else:
            succeeded = max(job.status.succeeded, sum(p.status.phase == "Succeeded" for p in pods))
        restarts = sum(_restarts(p) for p in pods) if self._on_failure(job) else 0
        failed = max(job.status.failed, len(counted) + restarts)
        st = job.status
        if not st.start_time and not job.spec.suspend:
            st.start_time = rfc3339(now)
        per_index = job.spec.HasField("backoff_limit_per_index")

        # Pods to stop are deleted only after the status that counts them is written: a
        # pod's restarts must not vanish with it if the write loses a race and is retried.
        doomed: list[pod_pb2.Pod] = []
        if fail_job is not None:
            doomed = self._fail(job, active, "PodFailurePolicy", fail_job.message)
        elif indexes is not None and per_index and self._too_many_failed(job, indexes):
            doomed = self._fail(
                job,
                active,
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            )
        elif not per_index and failed > job.spec.backoff_limit:
            doomed = self._fail(
                job, active, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            )
        elif self._past_deadline(job, now):
            doomed = self._fail(
                job, active, "DeadlineExceeded", "Job was active longer than specified deadline"
            )
        elif indexes is not None and self._all_indexes_done(job, indexes) and indexes.failed:
            doomed = self._fail(job, active, "FailedIndexes", "Job has failed indexes")
        elif self._complete(job, succeeded, active):
            set_condition(st.conditions, "Complete", "True", "", "")
            st.completion_time = rfc3339(now)
            self.events.normal(job, "Completed", "Job completed")
            doomed = active
        elif job.spec.suspend:
            set_condition(st.conditions, "Suspended", "True", "JobSuspended", "Job suspended")
            doomed = active
        else:
            if is_true(st.conditions, "Suspended"):
                set_condition(st.conditions, "Suspended", "False", "JobResumed", "Job resumed")
            if indexes is not None:
                active, doomed = self._scale_indexed(job, key, active, indexes, now)
            else:
                active, doomed = self._scale(job, key, active, succeeded, failed, counted, now)
        active = [p for p in active if p not in doomed]
        st.active = len(active)
        st.succeeded = succeeded
        st.failed = failed
        st.ready = sum(pod_ready(p) for p in active)
        if indexes is not None:
            st.completed_indexes = jobindex.format_indexes(indexes.succeeded)
            if per_index:
                st.failed_indexes = jobindex.format_indexes(indexes.failed)
        if st != cached.status:
            self.client.jobs.update_status(job)  # CAS on the cached version
        self._delete_pods(job, doomed)
        if finished(job) and job.spec.HasField("ttl_seconds_after_finished"):
            self.queue.add_after(key, job.spec.ttl_seconds_after_finished + 0.1)

    @staticmethod
    def _indexed(job: workloads_pb2.Job) -> bool:
        return job.spec.completion_mode == "Indexed"

    @staticmethod
    def _too_many_failed(job: workloads_pb2.Job, indexes: jobindex.IndexView) -> bool:
        return job.spec.HasField("max_failed_indexes") and (
            len(indexes.failed) > job.spec.max_failed_indexes
        )

    @staticmethod
    def _all_indexes_done(job: workloads_pb2.Job, indexes: jobindex.IndexView) -> bool:
        return len(indexes.succeeded) + len(indexes.failed) >= job.spec.completions

    @staticmethod
    def _on_failure(job: workloads_pb2.Job) -> bool:
        return job.spec.template.spec.restart_policy == "OnFailure"

    @staticmethod
    def _complete(job: workloads_pb2.Job, succeeded: int, active: list[pod_pb2.Pod]) -> bool:
        if job.spec.HasField("completions"):
            return succeeded >= job.spec.completions
        return succeeded > 0 and not active

    def _past_deadline(self, job: workloads_pb2.Job, now: float) -> bool:
        if not job.spec.HasField("active_deadline_seconds") or job.spec.suspend:
            return False
        started = parse_time(job.status.start_time) or now
        left = started + job.spec.active_deadline_seconds - now
        if left > 0:
            self.queue.add_after((job.metadata.namespace, job.metadata.name), left + 0.05)
            return False
        return True

    def _fail(
        self, job: workloads_pb2.Job, active: list[pod_pb2.Pod], reason: str, msg: str
    ) -> list[pod_pb2.Pod]:
        """Mark the Job Failed; returns the pods to stop."""
        set_condition(job.status.conditions, "Failed", "True", reason, msg)
        self.events.warning(job, reason, msg)
        return active

    def _scale(
        self,
        job: workloads_pb2.Job,
        key: Any,
        active: list[pod_pb2.Pod],
        succeeded: int,
        failed: int,
        failed_pods: list[pod_pb2.Pod],
        now: float,
    ) -> tuple[list[pod_pb2.Pod], list[pod_pb2.Pod]]:
        """Create pods towards the wanted number of active ones: (active, pods to delete)."""
        want = job.spec.parallelism
        if job.spec.HasField("completions"):
            want = min(want, job.spec.completions - succeeded)
        elif succeeded:
            want = 0
        if len(active) > want:
            return active, deletion_order(active)[: len(active) - want]
        if len(active) == want:
            return active, []
        if failed and failed_pods:
            delay = min(self.backoff_max, self.backoff_base * 2 ** (failed - 1))
            last = max(failed_at(p) for p in failed_pods)
            if now < last + delay:
                self.queue.add_after(key, last + delay - now + 0.05)
                return active, []
        created = []
        for _ in range(want - len(active)):
            created.append(self.control.create(job, pod_from_template(job.spec.template, job)))
        return active + created, []

    def _scale_indexed(
        self,
        job: workloads_pb2.Job,
        key: Any,
        active: list[pod_pb2.Pod],
        indexes: jobindex.IndexView,
        now: float,
    ) -> tuple[list[pod_pb2.Pod], list[pod_pb2.Pod]]:
        """One pod for each index still to run, lowest first, at most ``parallelism`` at a
        time, each waiting out its own index's back-off: (active, pods to delete)."""
        done = indexes.succeeded | indexes.failed
        doomed = list(indexes.extra) + [p for i, p in indexes.active.items() if i in done]
        live = {i: p for i, p in indexes.active.items() if i not in done}
        want = min(job.spec.parallelism, job.spec.completions - len(done))
        if len(live) > want:
            doomed += deletion_order(list(live.values()))[: len(live) - want]
            return active, doomed
        created: list[pod_pb2.Pod] = []
        wait: float | None = None
        for i in range(job.spec.completions):
            if len(live) + len(created) >= want:
                break
            if i in done or i in live:
                continue
            failures = indexes.failures.get(i, 0)
            if failures:
                delay = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
                ready_at = indexes.last_failure.get(i, 0.0) + delay
                if now < ready_at:
                    wait = ready_at if wait is None else min(wait, ready_at)
                    continue
            created.append(self.control.create(job, jobindex.new_pod(job, i, failures)))
        if wait is not None:
            self.queue.add_after(key, wait - now + 0.05)
        return active + created, doomed

    def _delete_pods(self, job: workloads_pb2.Job, pods: list[pod_pb2.Pod]) -> None:
        for p in pods:
            self.control.delete(job, p)

    def _maybe_expire(self, job: workloads_pb2.Job, now: float) -> None:
        """Delete a finished Job ``ttlSecondsAfterFinished`` after it finished."""
        if not job.spec.HasField("ttl_seconds_after_finished"):
            return
        done = parse_time(job.status.completion_time)
        if done is None:
            done = max(
                (
                    parse_time(c.last_transition_time) or now
                    for c in job.status.conditions
                    if c.type in ("Complete", "Failed") and c.status == "True"
                ),
                default=now,
            )
        left = done + job.spec.ttl_seconds_after_finished - now
        if left > 0:
            self.queue.add_after((job.metadata.namespace, job.metadata.name), left + 0.05)
            return
        for p in self.owned_pods.owned(job):
            try:
                self.client.pods.delete(p.metadata.name, namespace=p.metadata.namespace)
            except errors.NotFound:
                pass
        delete_exact(self.client, job, propagation_policy="Background")
