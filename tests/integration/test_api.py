"""Object semantics through the real API: defaults, generation, status, finalizers, graceful
pod deletion, bind, pagination over one revision, selectors, watch filters and bookmarks."""

from __future__ import annotations

import urllib.request
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hakube.api import convert, kinds
from hakube.api.v1 import api_pb2, api_pb2_grpc
from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(120)


def create(api: Api, doc: dict[str, Any]) -> Any:
    obj = kinds.wrap(convert.from_dict(doc))
    return kinds.unwrap(api.call("Create", api_pb2.CreateRequest(object=obj)))[1]


def deployment(name: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]},
            },
        },
    }


def test_defaults_and_server_fields_are_set_on_create(api: Api) -> None:
    d = create(api, deployment("web"))
    assert d.metadata.uid and d.metadata.creation_timestamp.endswith("Z")
    assert d.metadata.generation == 1 and int(d.metadata.resource_version) > 0
    assert d.spec.strategy.type == "RollingUpdate"
    assert convert.to_dict(d)["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": "25%",
        "maxUnavailable": "25%",
    }
    assert d.spec.revision_history_limit == 10
    tmpl = d.spec.template.spec
    assert tmpl.restart_policy == "Always" and tmpl.termination_grace_period_seconds == 30
    assert tmpl.containers[0].image_pull_policy == "IfNotPresent"


def test_generation_moves_with_the_spec_and_status_is_separate(api: Api) -> None:
    d = create(api, deployment("gen"))
    d.metadata.labels["touched"] = "yes"
    d = kinds.unwrap(api.call("Update", api_pb2.UpdateRequest(object=kinds.wrap(d))))[1]
    assert d.metadata.generation == 1
    d.spec.replicas = 5
    d.status.replicas = 99  # ignored by Update
    d = kinds.unwrap(api.call("Update", api_pb2.UpdateRequest(object=kinds.wrap(d))))[1]
    assert d.metadata.generation == 2 and d.status.replicas == 0
    d.status.replicas = 5
    d.spec.replicas = 1  # ignored by UpdateStatus
    d = kinds.unwrap(api.call("UpdateStatus", api_pb2.UpdateRequest(object=kinds.wrap(d))))[1]
    assert d.status.replicas == 5 and d.spec.replicas == 5 and d.metadata.generation == 2


def test_an_update_that_changes_nothing_keeps_the_resource_version(api: Api) -> None:
    d = create(api, deployment("same"))
    again = kinds.unwrap(api.call("Update", api_pb2.UpdateRequest(object=kinds.wrap(d))))[1]
    assert again.metadata.resource_version == d.metadata.resource_version


def test_finalizers_hold_deletion_until_removed(api: Api) -> None:
    cm = create(
        api,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        },
    )
    resp = api.call(
        "Delete", api_pb2.DeleteRequest(kind="ConfigMap", namespace="default", name="held")
    )
    assert not resp.deleted and resp.object.config_map.metadata.deletion_timestamp
    cm = api.call(
        "Get", api_pb2.GetRequest(kind="ConfigMap", namespace="default", name="held")
    ).config_map
    del cm.metadata.finalizers[:]
    api.call("Update", api_pb2.UpdateRequest(object=kinds.wrap(cm)))
    with pytest.raises(grpc.RpcError) as err:
        api.stubs[0].Get(
            api_pb2.GetRequest(kind="ConfigMap", namespace="default", name="held"), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_bind_then_graceful_delete_of_a_pod(api: Api) -> None:
    create(
        api,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "gp"},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]},
        },
    )
    bound = api.call(
        "Bind", api_pb2.BindRequest(namespace="default", name="gp", node_name="node-1")
    ).pod
    assert bound.spec.node_name == "node-1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(grpc.RpcError) as err:
        api.stubs[0].Bind(
            api_pb2.BindRequest(namespace="default", name="gp", node_name="node-2"), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.ABORTED
    resp = api.call("Delete", api_pb2.DeleteRequest(kind="Pod", namespace="default", name="gp"))
    assert not resp.deleted
    assert resp.object.pod.metadata.deletion_grace_period_seconds == 30
    resp = api.call(
        "Delete",
        api_pb2.DeleteRequest(kind="Pod", namespace="default", name="gp", grace_period_seconds=0),
    )
    assert resp.deleted


def test_paginated_list_is_consistent_at_one_revision(api: Api) -> None:
    api.call(
        "Create",
        api_pb2.CreateRequest(
            object=kinds.wrap(
                convert.from_dict(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pages"}}
                )
            )
        ),
    )
    for i in range(25):
        api.create_configmap(f"page-{i:02d}", ns="pages")
    first = api.call("List", api_pb2.ListRequest(kind="configmaps", namespace="pages", limit=10))
    assert len(first.items) == 10 and first.remaining_item_count == 15
    for i in range(25, 30):  # written between pages: must not appear
        api.create_configmap(f"page-{i:02d}", ns="pages")
    api.call("Delete", api_pb2.DeleteRequest(kind="ConfigMap", namespace="pages", name="page-20"))
    names = [o.config_map.metadata.name for o in first.items]
    token = getattr(first, "continue")
    while token:
        page = api.call(
            "List",
            api_pb2.ListRequest(
                kind="configmaps", namespace="pages", limit=10, **{"continue": token}
            ),
        )
        assert page.resource_version == first.resource_version
        names += [o.config_map.metadata.name for o in page.items]
        token = getattr(page, "continue")
    assert names == [f"page-{i:02d}" for i in range(25)]


def test_label_and_field_selectors(api: Api) -> None:
    for name, tier in (("sel-a", "web"), ("sel-b", "db"), ("sel-c", "web")):
        create(
            api,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {"tier": tier, "sel": "yes"}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]},
            },
        )
    api.call("Bind", api_pb2.BindRequest(namespace="default", name="sel-c", node_name="n9"))

    def names(ls: str = "", fs: str = "") -> list[str]:
        resp = api.call(
            "List", api_pb2.ListRequest(kind="po", label_selector=ls, field_selector=fs)
        )
        return [o.pod.metadata.name for o in resp.items]

    assert names("sel,tier=web") == ["sel-a", "sel-c"]
    assert names("sel,tier!=web") == ["sel-b"]
    assert names("sel,tier in (db, cache)") == ["sel-b"]
    assert names("sel,tier notin (db)") == ["sel-a", "sel-c"]
    assert names("sel,!tier") == []
    assert names("sel", "spec.nodeName=n9") == ["sel-c"]
    assert names("sel", "spec.nodeName=,metadata.name!=sel-a") == ["sel-b"]


def test_watch_filters_by_label_and_sends_bookmarks(cluster: LocalCluster, api: Api) -> None:
    rv = api.call("List", api_pb2.ListRequest(kind="Pod")).resource_version
    stub = api_pb2_grpc.ObjectServiceStub(api.channels[2])
    stream = stub.Watch(
        api_pb2.WatchRequest(
            kind="Pod",
            label_selector="watch=me",
            resource_version=rv,
            allow_bookmarks=True,
            bookmark_interval_seconds=1,
        ),
        timeout=30,
    )
    create(
        api,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "w-other"},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]},
        },
    )
    p = create(
        api,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "w-mine", "labels": {"watch": "me"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]},
        },
    )
    del p.metadata.labels["watch"]  # leaving the selector looks like DELETED to the watcher
    api.call("Update", api_pb2.UpdateRequest(object=kinds.wrap(p)))
    seen = []
    for ev in stream:
        seen.append((ev.type, ev.object.pod.metadata.name))
        if ev.type == "BOOKMARK":
            assert int(ev.resource_version) >= int(rv)
            break
    stream.cancel()
    assert seen == [("ADDED", "w-mine"), ("DELETED", "w-mine"), ("BOOKMARK", "")]


def test_health_reflection_and_metrics(cluster: LocalCluster, api: Api) -> None:
    ch = api.channels[0]
    health = health_pb2_grpc.HealthStub(ch).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    resp = next(
        iter(
            refl.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
        )
    )
    services = {s.name for s in resp.list_services_response.service}
    assert {"hakube.api.v1.ObjectService", "hakube.api.v1.ClusterService"} <= services
    with urllib.request.urlopen(f"http://{cluster.masters[0].metrics}/metrics", timeout=5) as r:
        text = r.read().decode()
    for metric in (
        "hakube_api_requests_total",
        "hakube_api_request_duration_seconds_bucket",
        "hakube_raft_term",
        "hakube_raft_is_leader",
        "hakube_raft_commit_index",
        "hakube_raft_proposal_duration_seconds_bucket",
        "hakube_watch_streams",
        'hakube_store_objects{kind="Namespace"}',
        "hakube_store_size_bytes",
    ):
        assert metric in text, metric
    status = api_pb2_grpc.ClusterServiceStub(ch).Status(api_pb2.ClusterStatusRequest(), timeout=5)
    assert status.leader and len(status.members) == 3 and status.ready
