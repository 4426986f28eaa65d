"""A master cut off from the majority ends its watch streams, so watchers move elsewhere."""

from __future__ import annotations

import threading

import grpc
import pytest

from hakube.api.v1 import api_pb2, api_pb2_grpc
from hakube.testing import pki as testpki
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def test_watches_end_with_unavailable_without_quorum_and_resume_with_it(
    masters3: LocalCluster,
) -> None:
    cluster = masters3
    lone, *others = cluster.masters
    channel = testpki.channel(lone.api)
    stub = api_pb2_grpc.ObjectServiceStub(channel)
    req = api_pb2.WatchRequest(kind="ConfigMap", allow_bookmarks=True, bookmark_interval_seconds=1)
    ended: list[grpc.StatusCode] = []
    events: list[str] = []

    def follow() -> None:
        try:
            for ev in stub.Watch(req, timeout=60):
                events.append(ev.type)
        except grpc.RpcError as exc:
            ended.append(exc.code())

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    wait_for(lambda: "BOOKMARK" in events, 15, "the watch to be established")
    for m in others:
        cluster.kill(m)
    wait_for(lambda: ended, 20, "the watch on the lone master to end")
    assert ended == [grpc.StatusCode.UNAVAILABLE]
    with pytest.raises(grpc.RpcError) as refused:
        next(iter(stub.Watch(req, timeout=5)))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "cut off from the majority" in (refused.value.details() or "")

    for m in others:
        cluster.start(m)
    cluster.wait_ready(timeout=30)

    def watch_works() -> bool:
        try:
            return next(iter(stub.Watch(req, timeout=5))).type in ("BOOKMARK", "ADDED")
        except grpc.RpcError:
            return False

    wait_for(watch_works, 30, "watches on the lone master to work again")
    channel.close()
