"""CronJob: create a Job at each time of a cron schedule.

Each sync looks at the latest scheduled time ``t`` at or before now (in ``spec.timeZone``,
default UTC) and runs it if it is newer than ``status.lastScheduleTime`` (or the CronJob's
creation) and not older than ``startingDeadlineSeconds``. Only the *latest* missed time is run,
so schedules missed while no controller-manager was leading run once, not once each.

The Job for ``t`` has a name derived from ``t`` (``<cronjob>-<minutes since the epoch>``, or
seconds for six-field schedules), so a second attempt for the same time -- by a new leader
after a failover, or after a lost answer -- meets AlreadyExists instead of running twice;
``lastScheduleTime`` is written after the Job exists. Concurrency: Allow runs regardless,
Forbid skips a time while a Job is active (it runs once the active Job ends, if still within
the starting deadline), Replace deletes the active Jobs first. Finished Jobs beyond
``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` are deleted, oldest first.

"Now" comes from the manager's clock (``Context.clock``): the host's in production, a fake one
that a test moves in tests; when that clock jumps, every CronJob is checked again at once.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from croniter import croniter

from hakube.api.conditions import is_true
from hakube.api.timestamps import parse_time, rfc3339
from hakube.api.v1 import meta_pb2, workloads_pb2
from hakube.client import errors
from hakube.controllers.base import Controller
from hakube.controllers.job import finished
from hakube.controllers.manager import register
from hakube.controllers.owned import delete_exact, live_copy, on_any_change, owner_enqueuer
from hakube.controllers.podutil import owned_by, owner_reference

SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def latest_time(schedule: str, tz: datetime.tzinfo, now: float) -> float:
    """The latest scheduled time at or before ``now``."""
    base = datetime.datetime.fromtimestamp(now + 0.001, tz)
    prev: datetime.datetime = croniter(schedule, base).get_prev(datetime.datetime)
    return prev.timestamp()


def next_time(schedule: str, tz: datetime.tzinfo, now: float) -> float:
    base = datetime.datetime.fromtimestamp(now, tz)
    nxt: datetime.datetime = croniter(schedule, base).get_next(datetime.datetime)
    return nxt.timestamp()


def job_name(cj: workloads_pb2.CronJob, t: float) -> str:
    seconds = len(cj.spec.schedule.split()) > 5
    return f"{cj.metadata.name}-{int(t) if seconds else int(t) // 60}"


@register
class CronJobController(Controller):
    name = "cronjob"

    def setup(self) -> None:
        self.clock = self.ctx.clock
        self.cronjobs = self.ctx.informers.get(workloads_pb2.CronJob)
        self.jobs = self.ctx.informers.get(workloads_pb2.Job)
        self.cronjobs.add_handlers(
            on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new)
        )
        on_any_change(self.jobs, owner_enqueuer(self.queue, "CronJob"))
        self._unsubscribe = self.clock.on_jump(self._recheck_all)

    def stop(self) -> None:
        self._unsubscribe()
        super().stop()

    def _recheck_all(self) -> None:
        for cj in self.cronjobs.list():
            self.enqueue(cj)

    # -- the reconcile ------------------------------------------------------------------------

    def sync(self, key: Any) -> None:
        found = live_copy(self.cronjobs, key)
        if found is None:
            return
        cached, cj = found
        jobs = [j for j in owned_by(self.jobs.list(), cj) if not j.metadata.deletion_timestamp]
        active = [j for j in jobs if not finished(j)]
        self._trim_history(cj, [j for j in jobs if finished(j)])
        now = self.clock.now()
        if not cj.spec.suspend:
            active = self._schedule(cj, key, active, now)
        st = cj.status
        del st.active[:]
        for j in sorted(active, key=lambda j: j.metadata.name):
            st.active.add(
                kind="Job",
                namespace=j.metadata.namespace,
                name=j.metadata.name,
                uid=j.metadata.uid,
                api_version="batch/v1",
            )
        done = [j.status.completion_time for j in jobs if is_true(j.status.conditions, "Complete")]
        if done and max(done) > st.last_successful_time:
            st.last_successful_time = max(done)
        if st != cached.status:
            self.client.cronjobs.update_status(cj)  # CAS on the cached version

    def _schedule(
        self, cj: workloads_pb2.CronJob, key: Any, active: list[Any], now: float
    ) -> list[Any]:
        """Run the due time if any; requeue for the next one. Returns the active Jobs."""
        tz: datetime.tzinfo = (
            zoneinfo.ZoneInfo(cj.spec.time_zone) if cj.spec.time_zone else datetime.UTC
        )
        self.queue.add_after(key, max(0.05, next_time(cj.spec.schedule, tz, now) - now + 0.01))
        earliest = (
            parse_time(cj.status.last_schedule_time)
            or parse_time(cj.metadata.creation_timestamp)
            or now
        )
        t = latest_time(cj.spec.schedule, tz, now)
        if t <= earliest:
            return active
        if (
            cj.spec.HasField("starting_deadline_seconds")
            and now - t > cj.spec.starting_deadline_seconds
        ):
            self.events.warning(
                cj,
                "MissedSchedule",
                f"missed scheduled time {rfc3339(t)}: past the starting deadline",
            )
            cj.status.last_schedule_time = rfc3339(t)
            return active
        policy = cj.spec.concurrency_policy or "Allow"
        if policy == "Forbid" and active:
            self.events.normal(
                cj,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is "
                "Forbid",
            )
            return active  # comes back when the active Job changes
        if policy == "Replace":
            for j in active:
                self._delete_job(cj, j, "SuccessfulDelete", "Deleted job")
            active = []
        job = self._new_job(cj, t)
        try:
            made = self.client.jobs.create(job)
            self.events.normal(cj, "SuccessfulCreate", f"Created job {made.metadata.name}")
        except errors.AlreadyExists:
            made = self.client.jobs.get(job.metadata.name, namespace=job.metadata.namespace)
            if not any(r.uid == cj.metadata.uid for r in made.metadata.owner_references):
                raise RuntimeError(f'job "{job.metadata.name}" exists and is not ours') from None
        cj.status.last_schedule_time = rfc3339(t)
        return [*active, made]

    @staticmethod
    def _new_job(cj: workloads_pb2.CronJob, t: float) -> workloads_pb2.Job:
        tpl = cj.spec.job_template
        job = workloads_pb2.Job(
            metadata=meta_pb2.ObjectMeta(
                name=job_name(cj, t),
                namespace=cj.metadata.namespace,
                labels=dict(tpl.metadata.labels),
                annotations={**tpl.metadata.annotations, SCHEDULED_AT: rfc3339(t)},
            ),
        )
        job.metadata.owner_references.append(owner_reference(cj))
        job.spec.CopyFrom(tpl.spec)
        return job

    def _trim_history(self, cj: workloads_pb2.CronJob, done: list[Any]) -> None:
        for ok, limit in (
            (True, cj.spec.successful_jobs_history_limit),
            (False, cj.spec.failed_jobs_history_limit),
        ):
            these = [j for j in done if is_true(j.status.conditions, "Complete") == ok]
            these.sort(
                key=lambda j: (j.metadata.annotations.get(SCHEDULED_AT, ""), j.metadata.name)
            )
            for j in these[: max(0, len(these) - limit)]:
                self._delete_job(cj, j, "SawCompletedJob", "Deleted finished job")

    def _delete_job(self, cj: workloads_pb2.CronJob, job: Any, reason: str, what: str) -> None:
        """Delete one of the CronJob's Jobs (its pods follow through garbage collection)."""
        if delete_exact(self.client, job, propagation_policy="Background"):
            self.events.normal(cj, reason, f"{what} {job.metadata.name}")
