"""Requests built to hurt a master: each is refused with a short INVALID_ARGUMENT (or counted
under a bounded label) and other callers are not held up. A huge selector is refused at once
while other calls keep being answered; made-up kinds do not grow /metrics; negative intervals
and grace periods are refused instead of spinning or meaning something odd."""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

import grpc
import pytest

from hakube.api.v1 import api_pb2
from hakube.client import TooLarge
from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(120)

HUGE = ",".join(["a"] * 400_000)  # 0.8 MB: once held a master's event loop for 10 s


def test_a_huge_selector_is_refused_without_holding_up_other_calls(api: Api) -> None:
    stub = api.stubs[0]
    with pytest.raises(grpc.RpcError) as err:
        stub.List(api_pb2.ListRequest(kind="pods", label_selector=HUGE), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert "at most 65536" in details and len(details) < 200, details[:300]

    stop = threading.Event()
    refused = []

    def storm() -> None:
        while not stop.is_set():
            try:
                stub.List(api_pb2.ListRequest(kind="pods", label_selector=HUGE), timeout=10)
            except grpc.RpcError as exc:
                refused.append(exc.code())

    threads = [threading.Thread(target=storm) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(50):  # each within a deadline far below the old 10 s stall
            stub.List(api_pb2.ListRequest(kind="Namespace"), timeout=3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert refused and set(refused) == {grpc.StatusCode.INVALID_ARGUMENT}


def _request_series(cluster: LocalCluster) -> list[str]:
    """The request-count series of one master (other series come and go with the cluster's own
    activity)."""
    url = f"http://{cluster.masters[0].metrics}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    assert "gizmo" not in text
    return [
        line.rsplit(" ", 1)[0]
        for line in text.splitlines()
        if line.startswith("hakube_api_requests_total{") and 'method="List"' in line
    ]


def test_made_up_kinds_do_not_grow_the_metrics(cluster: LocalCluster, api: Api) -> None:
    stub = api.stubs[0]

    def unknown(i: int) -> None:
        with pytest.raises(grpc.RpcError) as err:
            stub.List(api_pb2.ListRequest(kind=f"gizmo{i}"), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    unknown(0)  # the "unknown" series exists from here on
    before = _request_series(cluster)
    for i in range(1, 2000):
        unknown(i)
    assert _request_series(cluster) == before


def test_a_negative_bookmark_interval_is_refused(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        for _ in api.stubs[0].Watch(
            api_pb2.WatchRequest(kind="pods", allow_bookmarks=True, bookmark_interval_seconds=-1),
            timeout=10,
        ):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bookmarkIntervalSeconds -1 must be between 1 and 3600" in (err.value.details() or "")


def test_a_negative_grace_period_is_refused(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.stubs[0].Delete(
            api_pb2.DeleteRequest(
                kind="ConfigMap", namespace="default", name="existing", grace_period_seconds=-5
            ),
            timeout=10,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "gracePeriodSeconds -5 must not be negative" in (err.value.details() or "")


def test_a_request_over_3_mib_is_refused_before_it_is_read(api: Api) -> None:
    huge = api_pb2.ListRequest(kind="pods", label_selector="a" * (4 * 1024 * 1024))
    with pytest.raises(grpc.RpcError) as err:
        api.stubs[0].List(huge, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    api.stubs[0].List(api_pb2.ListRequest(kind="Namespace"), timeout=5)  # and still serving


def test_over_the_quota_the_store_only_shrinks_until_deletes_free_it(tmp_path: Any) -> None:
    from hakube.api.v1 import core_pb2, meta_pb2

    with (
        LocalCluster(str(tmp_path), 1, extra_args=["--quota-bytes", "300000"]) as c,
        c.client() as cl,
    ):

        def cm(name: str, size: int) -> Any:
            return core_pb2.ConfigMap(
                metadata=meta_pb2.ObjectMeta(name=name, namespace="default"),
                data={"blob": "x" * size},
            )

        def alarm() -> bool:
            with urllib.request.urlopen(f"http://{c.masters[0].metrics}/metrics") as r:
                return "hakube_store_quota_exceeded 1.0" in r.read().decode()

        made = []
        with pytest.raises(TooLarge, match="over its quota"):
            for i in range(100):
                cl.create(cm(f"big-{i}", 50_000))
                made.append(f"big-{i}")
        assert made and alarm()
        lease = core_pb2.Lease(metadata=meta_pb2.ObjectMeta(name="still", namespace="default"))
        cl.create(lease)  # leader election and heartbeats keep working
        small = cl.configmaps.get(made[0], namespace="default")
        small.data["blob"] = "y"
        cl.update(small)  # a shrinking update is accepted
        for name in made:
            cl.delete("configmaps", name, namespace="default")
        cl.create(cm("after", 10))  # room again
        assert not alarm()
