"""The client against a real three-master cluster that stays healthy: verbs, typed helpers,
errors, pagination, watch (including the relist), informer, apply, and the recovery of writes
whose first answer was lost (simulated exactly with a gRPC interceptor)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from hakube.api import convert
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import (
    ADDED,
    DELETED,
    MODIFIED,
    RELIST,
    AlreadyExists,
    Client,
    Conflict,
    Invalid,
    NotFound,
    WatchEvent,
)
from hakube.client.transport import Stubs
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(60)


def cm(name: str, ns: str = "default", **data: str) -> core_pb2.ConfigMap:
    return core_pb2.ConfigMap(
        metadata={"name": name, "namespace": ns, "labels": {"t": name}}, data=data
    )


def pod(name: str, **labels: str) -> pod_pb2.Pod:
    return pod_pb2.Pod(
        metadata={"name": name, "labels": labels},
        spec={"containers": [{"name": "c", "image": "busybox"}]},
    )


def name(ev: WatchEvent) -> str:
    assert ev.object is not None
    return str(ev.object.metadata.name)


def collect(w: Any, into: list[WatchEvent]) -> threading.Thread:
    t = threading.Thread(target=lambda: into.extend(w), daemon=True)
    t.start()
    return t


def test_objects_round_trip_through_typed_helpers(client: Client) -> None:
    created = client.pods.create(pod("rt-web", app="rt"))
    assert isinstance(created, pod_pb2.Pod) and created.metadata.uid
    assert created.spec.restart_policy == "Always"  # defaulted by the server
    got = client.pods.get("rt-web")
    assert got.metadata.uid == created.metadata.uid
    got.metadata.labels["tier"] = "fe"
    updated = client.update(got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    assert [p.metadata.name for p in client.pods.list(label_selector="app=rt").items] == ["rt-web"]
    assert client.get("po", "rt-web").metadata.labels["tier"] == "fe"
    res = client.pods.delete("rt-web")
    assert res.deleted and res.object is not None and res.object.metadata.name == "rt-web"
    with pytest.raises(NotFound, match='pods "rt-web" not found'):
        client.pods.get("rt-web")


def test_server_refusals_become_named_exceptions(client: Client) -> None:
    client.create(cm("err-a"))
    with pytest.raises(AlreadyExists):
        client.create(cm("err-a"))
    stale = client.configmaps.get("err-a")
    client.update(client.configmaps.get("err-a"))  # no change: rv stays
    fresh = client.configmaps.get("err-a")
    fresh.data["x"] = "1"
    client.update(fresh)
    stale.data["x"] = "2"
    with pytest.raises(Conflict, match="has been modified") as conflict:
        client.update(stale)
    assert isinstance(conflict.value.__cause__, grpc.RpcError)
    bad = pod("err-bad")
    bad.spec.containers[0].image = ""
    with pytest.raises(Invalid) as invalid:
        client.create(bad)
    assert invalid.value.field == "spec.containers[0].image"


def test_a_list_larger_than_a_page_comes_back_whole_and_in_order(client: Client) -> None:
    for i in range(23):
        client.create(cm(f"page-{i:02d}", ns="kube-public"))
    full = client.list("cm", namespace="kube-public", page_size=5)
    names = [c.metadata.name for c in full.items]
    assert names == [f"page-{i:02d}" for i in range(23)]
    assert [
        c.metadata.name
        for c in client.list("cm", namespace="kube-public", limit=7, page_size=3).items
    ] == names[:7]


def test_generate_name_creates_pick_a_fresh_name_each(client: Client) -> None:
    made = {
        client.create(core_pb2.ConfigMap(metadata={"generate_name": "gen-"})).metadata.name
        for _ in range(5)
    }
    assert len(made) == 5 and all(n.startswith("gen-") for n in made)


def test_watch_delivers_every_change_in_order_from_a_revision(client: Client) -> None:
    start = client.list("cm", namespace="default", limit=1).resource_version
    client.create(cm("w-a"))
    obj = client.configmaps.get("w-a")
    obj.data["k"] = "v"
    client.update(obj)
    client.configmaps.delete("w-a")
    events: list[WatchEvent] = []
    with client.watch(
        "configmaps", namespace="default", resource_version=start, label_selector="t=w-a"
    ) as w:
        t = collect(w, events)
        wait_for(lambda: len(events) >= 3, 10, "three events")
    t.join(5)
    assert [(e.type, name(e)) for e in events] == [
        (ADDED, "w-a"),
        (MODIFIED, "w-a"),
        (DELETED, "w-a"),
    ]
    revs = [e.resource_version for e in events]
    assert revs == sorted(revs) and len(set(revs)) == 3


def test_a_watch_from_a_compacted_revision_relists_once_and_carries_on(
    client: Client, cluster: LocalCluster
) -> None:
    first = client.create(cm("old-1", ns="kube-system"))
    for i in range(220):  # history keeps 200 events
        client.create(cm(f"churn-{i}", ns="kube-node-lease"))
    events: list[WatchEvent] = []
    w = client.watch(
        "configmaps", namespace="kube-system", resource_version=first.metadata.resource_version
    )
    t = collect(w, events)
    wait_for(lambda: events, 10, "the relist")
    client.create(cm("after-relist", ns="kube-system"))
    wait_for(lambda: len(events) >= 2, 10, "the event after the relist")
    w.stop()
    t.join(5)
    assert events[0].type == RELIST and events[0].object is None
    assert "old-1" in {o.metadata.name for o in events[0].items}
    assert (events[1].type, name(events[1])) == (ADDED, "after-relist")
    assert w.relists == 1


def test_an_informer_mirrors_the_kind_and_tells_its_handlers(client: Client) -> None:
    client.create(cm("inf-pre"))
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def note(what: str) -> Callable[..., None]:
        def handler(*objs: Any) -> None:
            with lock:
                seen.append((what, objs[-1].metadata.name))

        return handler

    inf = client.informer("configmaps", namespace="default", label_selector="t", resync_period=1.0)
    inf.add_handlers(on_add=note("add"), on_update=note("update"), on_delete=note("delete"))
    inf.start()
    try:
        assert inf.wait_for_sync(10)
        assert inf.get("inf-pre") is not None
        client.create(cm("inf-new"))
        wait_for(lambda: inf.get("inf-new") is not None, 10, "the informer to see inf-new")
        client.configmaps.delete("inf-pre")
        wait_for(lambda: inf.get("inf-pre") is None, 10, "the informer to drop inf-pre")
        wait_for(lambda: ("update", "inf-new") in seen, 15, "a resync")
    finally:
        inf.stop()
    assert ("add", "inf-pre") in seen and ("add", "inf-new") in seen
    assert ("delete", "inf-pre") in seen
    assert inf.resource_version


def test_an_informer_index_follows_adds_moves_and_deletes(client: Client) -> None:
    """``add_index``/``by_index`` (the node lifecycle controller finds a node's pods this way):
    an index added after the first sync covers what is cached, and follows updates that move
    an object to another value, deletions, and objects created later."""

    def shard_cm(name: str, shard: str) -> core_pb2.ConfigMap:
        return core_pb2.ConfigMap(
            metadata={"name": name, "namespace": "default", "labels": {"ix": "1", "shard": shard}}
        )

    def names(inf: Any, shard: str) -> set[str]:
        return {o.metadata.name for o in inf.by_index("shard", shard)}

    client.create(shard_cm("ix-a", "1"))
    client.create(shard_cm("ix-b", "2"))
    inf = client.informer("configmaps", namespace="default", label_selector="ix=1")
    inf.start()
    try:
        assert inf.wait_for_sync(10)
        inf.add_index("shard", lambda o: o.metadata.labels.get("shard", ""))
        assert names(inf, "1") == {"ix-a"} and names(inf, "2") == {"ix-b"}
        moved = client.configmaps.get("ix-a")
        moved.metadata.labels["shard"] = "2"
        client.update(moved)
        wait_for(lambda: names(inf, "2") == {"ix-a", "ix-b"}, 10, "ix-a to move to shard 2")
        assert names(inf, "1") == set()
        client.configmaps.delete("ix-b")
        client.create(shard_cm("ix-c", "3"))
        wait_for(lambda: names(inf, "3") == {"ix-c"}, 10, "ix-c in shard 3")
        wait_for(lambda: names(inf, "2") == {"ix-a"}, 10, "ix-b gone from shard 2")
    finally:
        inf.stop()


def test_apply_creates_then_reports_unchanged_then_merges_three_ways(client: Client) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ap-web", "labels": {"app": "web", "old": "x"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }
    assert client.apply(doc).action == "created"
    assert client.apply(doc).action == "unchanged"
    live = client.pods.get("ap-web")
    assert client.apply(convert.to_dict(live)).action == "unchanged"  # get -o yaml, re-applied
    by_hand = client.pods.get("ap-web")
    by_hand.metadata.labels["byhand"] = "yes"
    client.update(by_hand)
    client.bind("ap-web", "node-1")  # a field the manifest never had
    doc2 = {**doc, "metadata": {"name": "ap-web", "labels": {"app": "web2"}}}
    res = client.apply(doc2)
    assert res.action == "configured"
    assert dict(res.object.metadata.labels) == {"app": "web2", "byhand": "yes"}
    assert res.object.spec.node_name == "node-1"


# -- writes whose answer is lost after they applied ---------------------------------------------


class LoseAnswers(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Lets the first ``n`` calls of ``method`` reach the server, then throws their answers
    away and fails them as a master dying right after committing would."""

    def __init__(self, method: str, n: int = 1) -> None:
        self.method, self.left, self.lost = method, n, 0

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        result = continuation(details, request)
        if details.method.endswith("/" + self.method) and self.left > 0:
            result.result()  # the call completed on the server
            self.left -= 1
            self.lost += 1
            raise FakeUnavailable()
        return result


class FakeUnavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "Socket closed"


def lossy(client: Client, interceptor: LoseAnswers) -> Client:
    t = client.transport
    for ep in t.endpoints:
        s = t.stubs(ep)
        t._stubs[ep] = Stubs(ep, grpc.intercept_channel(s.channel, interceptor))
    return client


@pytest.fixture
def fresh(cluster: LocalCluster) -> Any:
    made: list[Client] = []

    def make() -> Client:
        made.append(Client(cluster.endpoints(), timeout=20))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_a_create_whose_answer_was_lost_is_not_made_twice_nor_reported_existing(
    fresh: Callable[[], Client],
) -> None:
    lose = LoseAnswers("Create")
    c = lossy(fresh(), lose)
    out = c.create(cm("lost-create"))
    assert lose.lost == 1
    assert out.metadata.uid == c.configmaps.get("lost-create").metadata.uid
    gen = LoseAnswers("Create")
    c2 = lossy(fresh(), gen)
    made = c2.create(core_pb2.ConfigMap(metadata={"generate_name": "lost-gen-"}))
    names = [
        o.metadata.name
        for o in c2.list("cm", namespace="default").items
        if o.metadata.name.startswith("lost-gen-")
    ]
    assert gen.lost == 1 and names == [made.metadata.name]


def test_a_cas_update_whose_answer_was_lost_reports_success(fresh: Callable[[], Client]) -> None:
    plain = fresh()
    obj = plain.create(cm("lost-update", n="1"))
    lose = LoseAnswers("Update")
    c = lossy(fresh(), lose)
    obj.data["n"] = "2"
    out = c.update(obj)  # carries obj's resourceVersion: compare-and-swap
    assert lose.lost == 1 and out.data["n"] == "2"
    assert plain.configmaps.get("lost-update").data["n"] == "2"


def test_a_delete_whose_answer_was_lost_reports_the_deletion(fresh: Callable[[], Client]) -> None:
    plain = fresh()
    plain.create(cm("lost-delete"))
    lose = LoseAnswers("Delete")
    res = lossy(fresh(), lose).configmaps.delete("lost-delete")
    assert lose.lost == 1 and res.deleted
    with pytest.raises(NotFound):
        plain.configmaps.get("lost-delete")
    with pytest.raises(NotFound):  # a delete of something that never existed still fails
        plain.configmaps.delete("lost-delete")


def test_a_bind_whose_answer_was_lost_reports_success(fresh: Callable[[], Client]) -> None:
    plain = fresh()
    p = plain.create(pod("lost-bind"))
    lose = LoseAnswers("Bind")
    out = lossy(fresh(), lose).bind(
        "lost-bind", "node-a", resource_version=p.metadata.resource_version
    )
    assert lose.lost == 1 and out.spec.node_name == "node-a"
