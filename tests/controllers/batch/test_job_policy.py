"""Jobs' failure policy and indexed completion: the batch/v1 manifests apply unchanged, bad
ones are refused naming the field, and the controller does what each rule says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hakube.api.v1 import pod_pb2, workloads_pb2
from hakube.client import Client, errors
from hakube.controllers.jobindex import FAILURE_COUNT, INDEX, format_indexes, parse_indexes
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import set_finished
from hakube.testing.wait import owned_pods, wait_for
from tests.controllers.batch.objs import condition, manifest, template

pytestmark = pytest.mark.timeout(150)
FAST = ["--controllers", "job", "--job-backoff-base", "0.2", "--job-backoff-max", "1"]

FAIL_ON_42 = {
    "rules": [
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]},
        },
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]
}


@pytest.fixture
def job_controller(managers: ComponentProcs) -> Iterator[ComponentProcs]:
    managers.start("cm-a", *FAST)
    yield managers


def make_job(client: Client, name: str, **spec: Any) -> workloads_pb2.Job:
    job: workloads_pb2.Job = manifest(
        "Job", name, {"template": template({"t": name}, "Never"), **spec}
    )
    return client.jobs.create(job)


def live(client: Client, job: workloads_pb2.Job) -> list[pod_pb2.Pod]:
    return [
        p
        for p in owned_pods(client, job.metadata.uid)
        if p.status.phase not in ("Succeeded", "Failed") and not p.metadata.deletion_timestamp
    ]


def wait_live(client: Client, job: workloads_pb2.Job, n: int) -> list[pod_pb2.Pod]:
    found: list[pod_pb2.Pod] = []

    def have() -> bool:
        found[:] = live(client, job)
        return len(found) == n

    wait_for(have, 20, f"{n} live pods of {job.metadata.name}")
    return found


def by_index(pods: list[pod_pb2.Pod]) -> dict[int, pod_pb2.Pod]:
    return {int(p.metadata.annotations[INDEX]): p for p in pods}


def failed_condition(client: Client, name: str) -> Any:
    return condition(client.jobs.get(name), "Failed")


def test_index_intervals() -> None:
    assert format_indexes({5, 0, 1, 2, 9, 10}) == "0-2,5,9-10"
    assert format_indexes(set()) == ""
    assert parse_indexes("0-2,5,9-10", 10) == {0, 1, 2, 5, 9}
    assert parse_indexes("x,3", 5) == {3}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"podFailurePolicy": FAIL_ON_42, "template": template({"t": "x"}, "OnFailure")},
            "spec.template.spec.restartPolicy",
        ),
        (
            {
                "podFailurePolicy": {
                    "rules": [
                        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0]}}
                    ]
                }
            },
            "spec.podFailurePolicy.rules[0].onExitCodes.values",
        ),
        (
            {
                "podFailurePolicy": {
                    "rules": [
                        {"action": "Explode", "onExitCodes": {"operator": "In", "values": [1]}}
                    ]
                }
            },
            "spec.podFailurePolicy.rules[0].action",
        ),
        (
            {"podFailurePolicy": {"rules": [{"action": "Count"}]}},
            "spec.podFailurePolicy.rules[0]",
        ),
        (
            {
                "podFailurePolicy": {
                    "rules": [
                        {
                            "action": "FailJob",
                            "onExitCodes": {
                                "containerName": "nope",
                                "operator": "In",
                                "values": [1],
                            },
                        }
                    ]
                }
            },
            "spec.podFailurePolicy.rules[0].onExitCodes.containerName",
        ),
        ({"completions": 3, "backoffLimitPerIndex": 1}, "spec.backoffLimitPerIndex"),
        ({"completionMode": "Indexed"}, "spec.completions"),
        ({"completionMode": "Sometimes"}, "spec.completionMode"),
        (
            {
                "completionMode": "Indexed",
                "completions": 2,
                "backoffLimitPerIndex": 1,
                "maxFailedIndexes": 3,
            },
            "spec.maxFailedIndexes",
        ),
    ],
)
def test_bad_policies_are_refused_naming_the_field(
    client: Client, spec: dict[str, Any], field: str
) -> None:
    body = {"template": template({"t": "bad"}, "Never"), "parallelism": 2, **spec}
    with pytest.raises(errors.Invalid) as exc:
        client.jobs.create(manifest("Job", "bad", body))
    assert f"{field}:" in exc.value.message
    with pytest.raises(errors.NotFound):
        client.jobs.get("bad")


def test_the_documented_manifest_applies_and_reads_back(client: Client) -> None:
    spec = {
        "completions": 12,
        "parallelism": 3,
        "completionMode": "Indexed",
        "backoffLimitPerIndex": 1,
        "maxFailedIndexes": 5,
        "template": template({"t": "doc"}, "Never"),
        "podFailurePolicy": FAIL_ON_42,
    }
    made = client.jobs.create(manifest("Job", "doc", spec))
    rules = made.spec.pod_failure_policy.rules
    assert [r.action for r in rules] == ["FailJob", "Ignore"]
    assert list(rules[0].on_exit_codes.values) == [42]
    assert rules[1].on_pod_conditions[0].status == "True"  # defaulted
    assert made.spec.backoff_limit_per_index == 1 and made.spec.max_failed_indexes == 5
    client.jobs.delete("doc")


def test_fail_job_on_an_exit_code_stops_the_job_at_once(
    client: Client, job_controller: ComponentProcs
) -> None:
    job = make_job(client, "fail42", parallelism=2, completions=4, podFailurePolicy=FAIL_ON_42)
    pods = wait_live(client, job, 2)
    set_finished(client, pods[0].metadata.name, exit_code=42)
    wait_for(lambda: failed_condition(client, "fail42"), 20, "Failed")
    cond = failed_condition(client, "fail42")
    assert cond.reason == "PodFailurePolicy"
    assert "exit code 42" in cond.message and "FailJob rule at index 0" in cond.message
    wait_for(lambda: not live(client, job), 20, "the other pod stopped")


def test_an_ignored_failure_is_not_counted_and_the_pod_is_replaced(
    client: Client, job_controller: ComponentProcs
) -> None:
    job = make_job(client, "evicted", backoffLimit=0, podFailurePolicy=FAIL_ON_42)
    (pod,) = wait_live(client, job, 1)
    pod.status.phase = "Failed"
    pod.status.conditions.add(
        type="DisruptionTarget", status="True", reason="EvictionByEvictionAPI"
    )
    pod.metadata.resource_version = ""
    client.pods.update_status(pod)
    wait_for(
        lambda: [p.metadata.name for p in live(client, job)] not in ([], [pod.metadata.name]),
        20,
        "a replacement pod",
    )
    got = client.jobs.get("evicted")
    assert got.status.failed == 0 and not failed_condition(client, "evicted")
    (replacement,) = live(client, job)
    set_finished(client, replacement.metadata.name, exit_code=1)  # counted: over backoffLimit 0
    wait_for(lambda: failed_condition(client, "evicted"), 20, "Failed")
    assert failed_condition(client, "evicted").reason == "BackoffLimitExceeded"


def test_an_indexed_job_runs_each_index_once(
    client: Client, job_controller: ComponentProcs
) -> None:
    job = make_job(client, "idx", completionMode="Indexed", completions=3, parallelism=3)
    pods = by_index(wait_live(client, job, 3))
    assert sorted(pods) == [0, 1, 2]
    for i, p in pods.items():
        assert p.metadata.name.startswith(f"idx-{i}-")
        assert p.spec.hostname == f"idx-{i}"
        assert p.metadata.labels[INDEX] == str(i)
        env = {e.name: e.value for e in p.spec.containers[0].env}
        assert env["JOB_COMPLETION_INDEX"] == str(i)
    set_finished(client, pods[1].metadata.name)
    wait_for(lambda: client.jobs.get("idx").status.completed_indexes == "1", 20, "index 1 done")
    for i in (0, 2):
        set_finished(client, pods[i].metadata.name)
    wait_for(lambda: condition(client.jobs.get("idx"), "Complete"), 20, "Complete")
    st = client.jobs.get("idx").status
    assert (st.completed_indexes, st.succeeded, st.failed) == ("0-2", 3, 0)
    assert len(owned_pods(client, job.metadata.uid)) == 3  # no index ran twice


def test_backoff_limit_per_index_fails_one_index_and_finishes_the_others(
    client: Client, job_controller: ComponentProcs
) -> None:
    job = make_job(
        client,
        "perindex",
        completionMode="Indexed",
        completions=3,
        parallelism=3,
        backoffLimitPerIndex=1,
    )
    pods = by_index(wait_live(client, job, 3))
    set_finished(client, pods[1].metadata.name, exit_code=1)  # index 1: first failure

    def retry_of_1() -> pod_pb2.Pod | None:
        again = by_index(live(client, job)).get(1)
        return again if again is not None and again.metadata.name != pods[1].metadata.name else None

    wait_for(retry_of_1, 20, "index 1 retried")
    retry = retry_of_1()
    assert retry is not None and retry.metadata.annotations[FAILURE_COUNT] == "1"
    set_finished(client, retry.metadata.name, exit_code=1)  # second: over its budget of 1
    wait_for(lambda: client.jobs.get("perindex").status.failed_indexes == "1", 20, "index 1 failed")
    assert not failed_condition(client, "perindex")  # the other indexes go on
    for i in (0, 2):
        set_finished(client, pods[i].metadata.name)
    wait_for(lambda: failed_condition(client, "perindex"), 20, "Failed")
    st = client.jobs.get("perindex").status
    assert failed_condition(client, "perindex").reason == "FailedIndexes"
    assert (st.completed_indexes, st.failed_indexes) == ("0,2", "1")
    assert 1 not in by_index(live(client, job))  # no third pod for index 1


def test_max_failed_indexes_fails_the_job_early(
    client: Client, job_controller: ComponentProcs
) -> None:
    job = make_job(
        client,
        "maxfail",
        completionMode="Indexed",
        completions=4,
        parallelism=2,
        backoffLimitPerIndex=0,
        maxFailedIndexes=0,
    )
    pods = by_index(wait_live(client, job, 2))
    set_finished(client, pods[0].metadata.name, exit_code=3)
    wait_for(lambda: failed_condition(client, "maxfail"), 20, "Failed")
    assert failed_condition(client, "maxfail").reason == "MaxFailedIndexesExceeded"
    wait_for(lambda: not live(client, job), 20, "index 1's pod stopped")
