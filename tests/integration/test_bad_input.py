"""Bad input gets the right status, a message naming the object and the field, and leaves the
cluster state unchanged (same revision before and after)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from hakube.api import convert, kinds
from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2, pod_pb2
from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[Api]:
    a = Api(cluster.endpoints())
    a.create_configmap("existing")
    yield a
    a.close()


def revision(api: Api) -> int:
    return int(api.call("List", api_pb2.ListRequest(kind="Namespace")).resource_version)


def expect(api: Api, code: grpc.StatusCode, method: str, req: Any, *words: str) -> str:
    before = revision(api)
    with pytest.raises(grpc.RpcError) as err:
        api.stubs[0].__getattribute__(method)(req, timeout=10)
    assert err.value.code() == code, err.value.details()
    details = err.value.details() or ""
    assert "\n" not in details
    for w in words:
        assert w in details, details
    assert revision(api) == before, "a rejected request changed the cluster state"
    return details


def pod(doc_spec: dict[str, Any], name: str = "p") -> api_pb2.Object:
    return kinds.wrap(
        convert.from_dict(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": doc_spec}
        )
    )


def test_an_invalid_name_is_refused_with_the_field(api: Api) -> None:
    req = api_pb2.CreateRequest(
        object=pod({"containers": [{"name": "c", "image": "i"}]}, name="Not_Valid")
    )
    expect(api, grpc.StatusCode.INVALID_ARGUMENT, "Create", req, 'Pod "Not_Valid"', "metadata.name")


def test_invalid_labels_are_refused(api: Api) -> None:
    p = pod_pb2.Pod(
        metadata={"name": "l", "labels": {"bad key!": "v"}},
        spec={"containers": [{"name": "c", "image": "i"}]},
    )
    expect(
        api,
        grpc.StatusCode.INVALID_ARGUMENT,
        "Create",
        api_pb2.CreateRequest(object=kinds.wrap(p)),
        "metadata.labels[bad key!]",
    )


def test_a_missing_required_field_is_named(api: Api) -> None:
    req = api_pb2.CreateRequest(object=pod({"containers": [{"name": "c"}]}))
    expect(api, grpc.StatusCode.INVALID_ARGUMENT, "Create", req, "spec.containers[0].image")


def test_an_empty_envelope_is_refused(api: Api) -> None:
    expect(
        api,
        grpc.StatusCode.INVALID_ARGUMENT,
        "Create",
        api_pb2.CreateRequest(),
        "set exactly one kind",
    )


def test_unknown_protobuf_fields_are_refused(api: Api) -> None:
    cm = core_pb2.ConfigMap(metadata={"name": "unknown-fields"})
    raw = cm.SerializeToString() + b"\xf8\x3e\x01"  # field 999, varint 1: unknown to us
    obj = api_pb2.Object()
    obj.config_map.ParseFromString(raw)
    expect(
        api,
        grpc.StatusCode.INVALID_ARGUMENT,
        "Create",
        api_pb2.CreateRequest(object=obj),
        'ConfigMap "unknown-fields"',
        "unknown",
    )


def test_malformed_protobuf_bytes_are_refused(api: Api) -> None:
    before = revision(api)
    channel = api.channels[0]
    create_raw = channel.unary_unary("/hakube.api.v1.ObjectService/Create")
    with pytest.raises(grpc.RpcError) as err:
        create_raw(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=10)
    assert err.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    assert revision(api) == before


def test_an_oversized_object_is_resource_exhausted(api: Api) -> None:
    cm = core_pb2.ConfigMap(metadata={"name": "huge"}, data={"blob": "x" * (2 * 1024 * 1024)})
    expect(
        api,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Create",
        api_pb2.CreateRequest(object=kinds.wrap(cm)),
        'ConfigMap "huge"',
        "limit",
    )


def test_a_stale_resource_version_is_aborted(api: Api) -> None:
    cur = api.call(
        "Get", api_pb2.GetRequest(kind="ConfigMap", namespace="default", name="existing")
    )
    stale = api_pb2.Object()
    stale.CopyFrom(cur)
    stale.config_map.metadata.resource_version = "1"
    stale.config_map.data["k"] = "changed"
    expect(
        api,
        grpc.StatusCode.ABORTED,
        "Update",
        api_pb2.UpdateRequest(object=stale),
        'configmaps "existing"',
        "modified",
    )


def test_creating_an_existing_object_is_already_exists(api: Api) -> None:
    cm = core_pb2.ConfigMap(metadata={"name": "existing"})
    expect(
        api,
        grpc.StatusCode.ALREADY_EXISTS,
        "Create",
        api_pb2.CreateRequest(object=kinds.wrap(cm)),
        'configmaps "existing"',
    )


def test_unknown_kind_and_missing_objects(api: Api) -> None:
    expect(
        api,
        grpc.StatusCode.INVALID_ARGUMENT,
        "Get",
        api_pb2.GetRequest(kind="Gadget", name="x"),
        '"Gadget"',
    )
    expect(
        api,
        grpc.StatusCode.NOT_FOUND,
        "Get",
        api_pb2.GetRequest(kind="pods", namespace="default", name="ghost"),
        'pods "ghost"',
    )
    expect(
        api,
        grpc.StatusCode.NOT_FOUND,
        "Delete",
        api_pb2.DeleteRequest(kind="pods", namespace="default", name="ghost"),
        "ghost",
    )


def test_a_missing_namespace_is_not_found(api: Api) -> None:
    cm = core_pb2.ConfigMap(metadata={"name": "x", "namespace": "nowhere"})
    expect(
        api,
        grpc.StatusCode.NOT_FOUND,
        "Create",
        api_pb2.CreateRequest(object=kinds.wrap(cm)),
        'namespaces "nowhere"',
    )


def test_bad_selectors_are_invalid(api: Api) -> None:
    expect(
        api,
        grpc.StatusCode.INVALID_ARGUMENT,
        "List",
        api_pb2.ListRequest(kind="pods", label_selector="a in (b"),
        "label selector",
    )
    expect(
        api,
        grpc.StatusCode.INVALID_ARGUMENT,
        "List",
        api_pb2.ListRequest(kind="pods", field_selector="spec.color=blue"),
        "spec.color",
    )


def test_watch_from_a_compacted_revision_is_out_of_range(tmp_path: Any) -> None:
    with LocalCluster(str(tmp_path / "small-history"), 3, extra_args=["--history-size", "10"]) as c:
        a = Api(c.endpoints())
        for i in range(30):
            a.create_configmap(f"h{i}")
        stub = api_pb2_grpc.ObjectServiceStub(a.channels[1])
        with pytest.raises(grpc.RpcError) as err:
            next(
                iter(
                    stub.Watch(
                        api_pb2.WatchRequest(kind="ConfigMap", resource_version="3"), timeout=10
                    )
                )
            )
        assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "too old resource version" in (err.value.details() or "")
        # A continue token from before the compaction is just as stale.
        first = a.call("List", api_pb2.ListRequest(kind="ConfigMap", limit=5))
        for i in range(30, 45):
            a.create_configmap(f"h{i}")
        with pytest.raises(grpc.RpcError) as err:
            a.stubs[0].List(
                api_pb2.ListRequest(
                    kind="ConfigMap", limit=5, **{"continue": getattr(first, "continue")}
                ),
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
        a.close()
