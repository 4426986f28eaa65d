"""The pure parts of the workload controllers: fenceposts, rollout steps, ranking, slow start."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hakube.api import rollout
from hakube.api.v1 import pod_pb2, workloads_pb2
from hakube.controllers import deployutil as du
from hakube.controllers.expectations import Expectations
from hakube.controllers.podutil import deletion_rank
from hakube.controllers.replicaset import slow_start


def deploy(replicas: int, surge: Any = "25%", unavailable: Any = "25%") -> du.Deployment:
    d = workloads_pb2.Deployment(spec={"replicas": replicas})
    d.spec.strategy.type = "RollingUpdate"
    for field, v in (("max_surge", surge), ("max_unavailable", unavailable)):
        val = getattr(d.spec.strategy.rolling_update, field)
        if isinstance(v, str):
            val.string_value = v
        else:
            val.number_value = v
    return d


def rs(
    name: str, spec: int, status: int | None = None, available: int | None = None, rev: int = 1
) -> workloads_pb2.ReplicaSet:
    status = spec if status is None else status
    out = workloads_pb2.ReplicaSet(metadata={"name": name}, spec={"replicas": spec})
    out.status.replicas = status
    out.status.available_replicas = status if available is None else available
    out.metadata.annotations[rollout.REVISION] = str(rev)
    return out


@pytest.mark.parametrize(
    "replicas,surge,unavail,want",
    [
        (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailable down
        (4, "25%", "25%", (1, 1)),
        (3, 0, 0, (0, 1)),  # both zero: one may be unavailable
        (5, 2, "0%", (2, 0)),
        (1, "25%", "25%", (1, 0)),
    ],
)
def test_fenceposts_round_like_kubernetes(
    replicas: int, surge: Any, unavail: Any, want: tuple[int, int]
) -> None:
    assert du.fenceposts(deploy(replicas, surge, unavail)) == want


def test_the_new_replicaset_grows_only_within_the_surge() -> None:
    d = deploy(4, 1, 1)
    old, new = rs("old", 4), rs("new", 0, rev=2)
    assert du.new_rs_replicas(d, [old, new], new) == 1
    # The old set was scaled down to 3 but its pods are not observed gone yet: no room.
    old_scaled, new1 = rs("old", 3, status=4), rs("new", 1, rev=2)
    assert du.new_rs_replicas(d, [old_scaled, new1], new1) == 1
    assert du.new_rs_replicas(d, [rs("old", 3), new1], new1) == 2


def test_old_replicasets_shrink_only_while_enough_pods_stay_available() -> None:
    d = deploy(4, 1, 1)
    new = rs("new", 1, available=0, rev=2)
    assert du.old_scale_down_plan(d, [rs("old", 4)], new) == {"old": 3}
    # One old pod is unavailable: it goes first, and no available one may go with it.
    assert du.old_scale_down_plan(d, [rs("old", 3, available=2)], new) == {}
    assert du.old_scale_down_plan(d, [rs("old", 4, available=3)], new) == {"old": 3}
    new_ready = rs("new", 2, rev=2)
    assert du.old_scale_down_plan(d, [rs("old", 3)], new_ready) == {"old": 1}


def test_scaling_mid_rollout_keeps_proportions() -> None:
    d = deploy(20, 0, 1)
    old, new = rs("old", 6), rs("new", 4, rev=2)
    d.spec.replicas = 20
    sizes = du.proportions(d, [old, new], new)
    assert sizes == {"old": 12, "new": 8}
    d.spec.replicas = 5
    assert sum(du.proportions(d, [old, new], new).values()) == 5


def test_the_template_hash_ignores_its_own_label_and_changes_with_the_template() -> None:
    t = pod_pb2.PodTemplateSpec(
        metadata={"labels": {"app": "a"}}, spec={"containers": [{"name": "c", "image": "i:1"}]}
    )
    h = du.template_hash(t)
    labelled = pod_pb2.PodTemplateSpec()
    labelled.CopyFrom(t)
    labelled.metadata.labels[rollout.HASH_LABEL] = h
    assert du.template_hash(labelled) == h and rollout.same_template(t, labelled)
    t.spec.containers[0].image = "i:2"
    assert du.template_hash(t) != h
    assert du.template_hash(t, 1) != du.template_hash(t)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_scale_down_picks_unscheduled_then_not_ready_then_newest() -> None:
    def pod(name: str, node: str, ready: bool, created: str) -> pod_pb2.Pod:
        p = pod_pb2.Pod(
            metadata={"name": name, "creation_timestamp": created}, spec={"node_name": node}
        )
        p.status.phase = "Running" if node else "Pending"
        p.status.conditions.add(
            type="Ready", status="True" if ready else "False", last_transition_time=created
        )
        return p

    pods = [
        pod("old-ready", "n1", True, "2026-01-01T00:00:00Z"),
        pod("new-ready", "n1", True, "2026-01-01T00:05:00Z"),
        pod("not-ready", "n1", False, "2026-01-01T00:00:00Z"),
        pod("unscheduled", "", False, "2026-01-01T00:00:00Z"),
    ]
    order = [p.metadata.name for p in sorted(pods, key=deletion_rank)]
    assert order == ["unscheduled", "not-ready", "new-ready", "old-ready"]


def test_slow_start_doubles_batches_and_stops_at_the_first_failure() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def fn() -> None:
        with lock:
            calls.append(1)
            if len(calls) == 5:
                raise RuntimeError("refused")

    with ThreadPoolExecutor(8) as pool:
        done, err = slow_start(pool, 20, fn)
    assert err is not None and done == 6 and len(calls) == 7  # batches 1, 2, 4: stop
    with ThreadPoolExecutor(8) as pool:
        assert slow_start(pool, 9, lambda: None) == (9, None)


def test_expectations_hold_until_every_change_is_observed() -> None:
    e = Expectations(ttl=60)
    key = ("ns", "rs")
    e.expect_creations(key, 2)
    assert not e.satisfied(key)
    e.creation_observed(key)
    e.creation_failed(key)
    assert e.satisfied(key)
    e.expect_deletions(key, [("ns", "p1")])
    assert not e.satisfied(key)
    e.deletion_observed(key, ("ns", "p1"))
    assert e.satisfied(key)
    e.expect_creations(key, 1)
    assert Expectations(ttl=0).satisfied(key)
