"""Jobs: completions and parallelism, back-off, deadline, TTL, and no duplicate runs on failover."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hakube.api.v1 import workloads_pb2
from hakube.client import Client, errors
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import set_finished, set_running
from hakube.testing.wait import owned_pods, wait_for, wait_pods
from tests.controllers.batch.objs import condition, leader, manifest, template, update_spec

pytestmark = pytest.mark.timeout(150)
FAST = ["--controllers", "job", "--job-backoff-base", "0.5", "--job-backoff-max", "4"]


def make_job(client: Client, name: str, restart: str = "Never", **spec: Any) -> workloads_pb2.Job:
    job: workloads_pb2.Job = manifest(
        "Job", name, {"template": template({"t": name}, restart), **spec}
    )
    return client.jobs.create(job)


def finish_all(client: Client, pods: list[Any], exit_code: int = 0) -> None:
    for p in pods:
        set_finished(client, p.metadata.name, exit_code=exit_code)


def test_a_job_runs_completions_pods_parallelism_at_a_time(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", *FAST)
    job = make_job(client, "three", completions=3, parallelism=2)
    uid = job.metadata.uid
    first = wait_pods(client, uid, 2)
    assert all(p.metadata.labels["job-name"] == "three" for p in first)
    assert all(p.metadata.labels["controller-uid"] == uid for p in first)
    set_running(client, first[0].metadata.name)
    wait_for(lambda: client.jobs.get("three").status.active == 2, 20, "active 2")
    finish_all(client, first)
    wait_for(lambda: len(owned_pods(client, uid)) == 3, 20, "the third pod")
    last = [p for p in owned_pods(client, uid) if p.status.phase == "Pending"]
    assert len(last) == 1  # only one more: completions - succeeded
    finish_all(client, last)
    wait_for(lambda: condition(client.jobs.get("three"), "Complete"), 20, "Complete")
    st = client.jobs.get("three").status
    assert (st.succeeded, st.failed, st.active) == (3, 0, 0)
    assert st.start_time and st.completion_time
    assert len(owned_pods(client, uid)) == 3


def test_failed_pods_are_retried_with_back_off_up_to_the_limit(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", *FAST)
    job = make_job(client, "flaky", backoffLimit=2)
    uid = job.metadata.uid
    gaps, failed_at = [], 0.0
    for n in range(1, 4):
        pods = wait_pods(client, uid, n)
        pending = [p for p in pods if p.status.phase == "Pending"]
        assert len(pending) == 1
        if n > 1:
            gaps.append(time.monotonic() - failed_at)
        failed_at = time.monotonic()  # before the pod's finishedAt: gaps are never short
        set_finished(client, pending[0].metadata.name, exit_code=1)
    wait_for(lambda: condition(client.jobs.get("flaky"), "Failed"), 20, "Failed")
    got = client.jobs.get("flaky")
    assert condition(got, "Failed").reason == "BackoffLimitExceeded"
    assert got.status.failed == 3 and got.status.active == 0
    assert len(owned_pods(client, uid)) == 3  # no fourth attempt
    # 0.5 s after the first failure, 1 s after the second (doubling), never near the cap
    assert gaps[0] >= 0.49 and gaps[1] >= 0.99
    assert max(gaps) < 4


def test_a_job_past_its_deadline_fails_and_its_pods_go(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", *FAST)
    job = make_job(client, "slow", parallelism=2, completions=4, activeDeadlineSeconds=2)
    wait_pods(client, job.metadata.uid, 2)
    wait_for(lambda: condition(client.jobs.get("slow"), "Failed"), 20, "DeadlineExceeded")
    assert condition(client.jobs.get("slow"), "Failed").reason == "DeadlineExceeded"
    wait_pods(client, job.metadata.uid, 0)


def gone(client: Client, name: str) -> bool:
    try:
        client.jobs.get(name)
    except errors.NotFound:
        return True
    return False


def test_a_finished_job_is_deleted_after_its_ttl(client: Client, managers: ComponentProcs) -> None:
    managers.start("cm-a", *FAST)
    job = make_job(client, "brief", ttlSecondsAfterFinished=1)
    finish_all(client, wait_pods(client, job.metadata.uid, 1))
    wait_for(lambda: gone(client, "brief"), 20, "the job deleted after its TTL")
    assert owned_pods(client, job.metadata.uid) == []


def test_a_job_completes_exactly_once_across_a_controller_failover(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", *FAST)
    wait_for(lambda: leader(client) == "cm-a", 20, "cm-a to lead")
    managers.start("cm-b", *FAST)
    job = make_job(client, "failover", completions=6, parallelism=2, restart="OnFailure")
    uid = job.metadata.uid
    finish_all(client, wait_pods(client, uid, 2))
    wait_for(lambda: len(owned_pods(client, uid)) == 4, 20, "pods 3 and 4")
    managers.kill("cm-a")
    finish_all(client, [p for p in owned_pods(client, uid) if p.status.phase == "Pending"])
    wait_for(lambda: len(owned_pods(client, uid)) == 6, 30, "pods 5 and 6 from cm-b")
    finish_all(client, [p for p in owned_pods(client, uid) if p.status.phase == "Pending"])
    wait_for(lambda: condition(client.jobs.get("failover"), "Complete"), 20, "Complete")
    assert leader(client) == "cm-b"
    st = client.jobs.get("failover").status
    assert (st.succeeded, st.failed, st.active) == (6, 0, 0)
    assert len(owned_pods(client, uid)) == 6  # no pod ran twice


def test_container_restarts_count_as_failures_with_on_failure(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", *FAST)
    job = make_job(client, "restarts", restart="OnFailure", backoffLimit=1)
    (pod,) = wait_pods(client, job.metadata.uid, 1)
    set_running(client, pod.metadata.name)
    pod = client.pods.get(pod.metadata.name)
    pod.status.container_statuses[0].restart_count = 2  # what the agent reports after restarts
    pod.metadata.resource_version = ""
    client.pods.update_status(pod)
    wait_for(lambda: condition(client.jobs.get("restarts"), "Failed"), 20, "Failed")
    assert client.jobs.get("restarts").status.failed == 2
    wait_pods(client, job.metadata.uid, 0)  # the running pod is stopped


def test_a_suspended_job_runs_nothing_until_resumed(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", *FAST)
    job = make_job(client, "later", suspend=True, parallelism=2, completions=2)
    wait_for(lambda: condition(client.jobs.get("later"), "Suspended"), 20, "Suspended")
    assert owned_pods(client, job.metadata.uid) == []
    job = client.jobs.get("later")
    job.spec.suspend = False
    update_spec(client.jobs, job)
    wait_pods(client, job.metadata.uid, 2)
    wait_for(lambda: not condition(client.jobs.get("later"), "Suspended"), 20, "resumed")
