"""CronJobs on an injected clock: schedules, concurrency policies, deadlines, history, failover."""

from __future__ import annotations

import datetime
import math
import time
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest

from hakube.api.clock import Clock
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import workloads_pb2
from hakube.client import Client
from hakube.controllers.cronjob import latest_time
from hakube.controllers.manager import ControllerManager
from hakube.leaderelection import Component, ElectionConfig
from hakube.lifecycle import Running
from hakube.testing import pki as testpki
from hakube.testing.clock import FakeClock
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.wait import wait_for
from tests.controllers.batch.objs import leader, manifest, template

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at the real time, which is at or before any CronJob's creation, so no
    scheduled time lies between the creation and the clock until a test moves it. (Starting it
    at T0 - 30 s put the minute before T0 in that gap whenever the CronJob was created in the
    same real minute, and a controller that synced before the test moved the clock ran it.)"""
    return FakeClock(time.time())


def minute_after(clock: FakeClock) -> float:
    """T0: a whole minute after the CronJobs' creation."""
    return float(math.ceil(clock.now() / 60) * 60 + 60)


class Managers:
    """Controller-managers running only the CronJob controller in this process, on the test's
    clock, each with the controller-manager's own identity and a fast election."""

    def __init__(self, cluster: LocalCluster, clock: Clock) -> None:
        self.cluster, self.clock = cluster, clock
        self.running: dict[str, Running[Component]] = {}

    def start(self, who: str) -> None:
        client = Client(
            self.cluster.endpoints(),
            credentials=testpki.credentials(user="controller-manager"),
            timeout=10,
        )
        config = ElectionConfig(
            name="hakube-controller-manager",
            namespace="kube-system",
            identity=who,
            lease_duration=2,
            renew_deadline=1.5,
            retry_period=0.2,
        )
        work = ControllerManager(["cronjob"], clock=self.clock)
        self.running[who] = Running.start(Component(client, config, work))

    def stop(self, who: str) -> None:
        running = self.running.pop(who)
        running.stop()
        running.service.client.close()

    def close(self) -> None:
        for who in list(self.running):
            self.stop(who)


@pytest.fixture
def on_clock(cluster: LocalCluster, clock: FakeClock) -> Iterator[Managers]:
    m = Managers(cluster, clock)
    yield m
    m.close()


def make_cronjob(client: Client, name: str, **spec: Any) -> workloads_pb2.CronJob:
    body = {
        "schedule": "*/1 * * * *",
        "jobTemplate": {"spec": {"template": template({"cron": name}, "Never")}},
        **spec,
    }
    cj: workloads_pb2.CronJob = manifest("CronJob", name, body)
    return client.cronjobs.create(cj)


def jobs_of(client: Client, cj: workloads_pb2.CronJob) -> list[workloads_pb2.Job]:
    jobs = [
        j
        for j in client.jobs.list().items
        if any(r.uid == cj.metadata.uid for r in j.metadata.owner_references)
        and not j.metadata.deletion_timestamp
    ]
    return sorted(jobs, key=lambda j: j.metadata.name)


def names(client: Client, cj: workloads_pb2.CronJob) -> list[str]:
    return [j.metadata.name for j in jobs_of(client, cj)]


def run_name(cj: workloads_pb2.CronJob, t: float) -> str:
    return f"{cj.metadata.name}-{int(t) // 60}"


def complete(client: Client, name: str, ok: bool = True) -> None:
    job = client.jobs.get(name)
    job.status.conditions.add(type="Complete" if ok else "Failed", status="True")
    job.status.completion_time = rfc3339()
    job.metadata.resource_version = ""
    client.jobs.update_status(job)


def test_allow_runs_every_time_and_tracks_active_jobs(
    client: Client, on_clock: Managers, clock: FakeClock
) -> None:
    t0 = minute_after(clock)
    on_clock.start("cm-a")
    cj = make_cronjob(client, "allow")
    clock.set(t0)
    wait_for(lambda: names(client, cj) == [run_name(cj, t0)], 20, "the first run")
    clock.set(t0 + 60)
    want = [run_name(cj, t0), run_name(cj, t0 + 60)]
    wait_for(lambda: names(client, cj) == want, 20, "the second run beside the first")
    wait_for(lambda: len(client.cronjobs.get("allow").status.active) == 2, 20, "two active")
    st = client.cronjobs.get("allow").status
    assert st.last_schedule_time == rfc3339(t0 + 60)
    job = jobs_of(client, cj)[0]
    assert job.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == rfc3339(
        t0
    )
    assert job.spec.template.metadata.labels["cron"] == "allow"


def test_forbid_waits_for_the_active_job_then_runs(
    client: Client, on_clock: Managers, clock: FakeClock
) -> None:
    t0 = minute_after(clock)
    on_clock.start("cm-a")
    cj = make_cronjob(client, "forbid", concurrencyPolicy="Forbid")
    clock.set(t0)
    wait_for(lambda: names(client, cj) == [run_name(cj, t0)], 20, "the first run")
    clock.set(t0 + 60)

    def held_back() -> bool:
        return any(
            e.reason == "JobAlreadyActive" and e.involved_object.name == "forbid"
            for e in client.events.list().items
        )

    wait_for(held_back, 20, "the run held back (event JobAlreadyActive)")
    assert names(client, cj) == [run_name(cj, t0)]  # skipped while the first is active
    complete(client, run_name(cj, t0))
    want = [run_name(cj, t0), run_name(cj, t0 + 60)]
    wait_for(lambda: names(client, cj) == want, 20, "the run after the first finished")


def test_replace_deletes_the_active_job(
    client: Client, on_clock: Managers, clock: FakeClock
) -> None:
    t0 = minute_after(clock)
    on_clock.start("cm-a")
    cj = make_cronjob(client, "replace", concurrencyPolicy="Replace")
    clock.set(t0)
    wait_for(lambda: names(client, cj) == [run_name(cj, t0)], 20, "the first run")
    clock.set(t0 + 60)
    wait_for(lambda: names(client, cj) == [run_name(cj, t0 + 60)], 20, "the replacement")


def test_history_limits_suspend_and_starting_deadline(
    client: Client, on_clock: Managers, clock: FakeClock
) -> None:
    t0 = minute_after(clock)
    on_clock.start("cm-a")
    cj = make_cronjob(client, "hist", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    late = make_cronjob(client, "late", startingDeadlineSeconds=10)
    held = make_cronjob(client, "held", suspend=True)
    for i in range(3):
        clock.set(t0 + 60 * i)
        wait_for(lambda i=i: run_name(cj, t0 + 60 * i) in names(client, cj), 20, f"run {i}")
        complete(client, run_name(cj, t0 + 60 * i), ok=i != 1)
    want = [run_name(cj, t0 + 60), run_name(cj, t0 + 120)]  # newest success, newest failure
    wait_for(lambda: names(client, cj) == want, 20, "history trimmed")
    wait_for(
        lambda: client.cronjobs.get("hist").status.last_successful_time, 20, "lastSuccessfulTime"
    )
    clock.set(t0 + 180 + 30)  # 30 s after the time: beyond late's 10 s deadline
    wait_for(lambda: run_name(cj, t0 + 180) in names(client, cj), 20, "hist runs late")
    wait_for(
        lambda: client.cronjobs.get("late").status.last_schedule_time == rfc3339(t0 + 180),
        20,
        "late's missed time recorded",
    )
    assert run_name(late, t0 + 180) not in names(client, late)
    assert names(client, held) == []


def test_times_missed_during_a_failover_run_once(
    client: Client, on_clock: Managers, clock: FakeClock
) -> None:
    t0 = minute_after(clock)
    on_clock.start("cm-a")
    wait_for(lambda: leader(client) == "cm-a", 20, "cm-a to lead")
    cj = make_cronjob(client, "failover")
    clock.set(t0)
    wait_for(lambda: names(client, cj) == [run_name(cj, t0)], 20, "the first run")
    on_clock.stop("cm-a")  # hands the lease on
    clock.set(t0 + 300)  # five times pass while nobody leads
    on_clock.start("cm-b")
    want = [run_name(cj, t0), run_name(cj, t0 + 300)]
    wait_for(lambda: names(client, cj) == want, 30, "one run for the missed times")
    wait_for(
        lambda: client.cronjobs.get("failover").status.last_schedule_time == rfc3339(t0 + 300),
        20,
        "lastScheduleTime",
    )
    assert leader(client) == "cm-b"
    assert names(client, cj) == want


def test_a_seconds_schedule_runs_on_the_real_clock(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "cronjob")
    cj = make_cronjob(client, "tick", schedule="* * * * * */2")  # croniter: seconds come last
    wait_for(lambda: len(names(client, cj)) >= 2, 20, "two runs two seconds apart")
    times = [int(n.rsplit("-", 1)[1]) for n in names(client, cj)[:2]]
    assert times[1] - times[0] == 2 and times[0] % 2 == 0


def test_schedules_follow_the_time_zone() -> None:
    tokyo = datetime.timezone(datetime.timedelta(hours=9))  # no DST: same as Asia/Tokyo
    now = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC).timestamp()
    t = latest_time("0 9 * * *", zoneinfo.ZoneInfo("Asia/Tokyo"), now)
    assert datetime.datetime.fromtimestamp(t, tokyo).hour == 9
    assert datetime.datetime.fromtimestamp(t, datetime.UTC).hour == 0
    assert latest_time("0 9 * * *", datetime.UTC, now) == now - 3 * 3600
