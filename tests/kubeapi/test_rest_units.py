"""The REST door's pure parts: patches as Kubernetes applies them, URL paths, Status objects,
Tables and the OpenAPI schemas (no cluster)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.protobuf.message import Message

from hakube.api import convert, kinds
from hakube.api.v1 import pod_pb2, workloads_pb2
from hakube.apiserver import errors
from hakube.apiserver.rest import (
    codec,
    fieldowners,
    k8sproto,
    openapi,
    patch,
    protoschema,
    routes,
    status,
)

POD = pod_pb2.Pod.DESCRIPTOR
DEPLOY = workloads_pb2.Deployment.DESCRIPTOR


def test_strategic_merge_merges_containers_by_name_and_ports_by_container_port() -> None:
    live = {
        "spec": {
            "containers": [
                {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "name": "http"}]},
                {"name": "b", "image": "b:1", "env": [{"name": "X", "value": "1"}]},
            ]
        }
    }
    p = {
        "spec": {
            "containers": [
                {"name": "b", "image": "b:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "a", "ports": [{"containerPort": 443}]},
            ]
        }
    }
    out = patch.strategic_merge(live, p, POD)
    a, b = out["spec"]["containers"]
    assert a == {
        "name": "a",
        "image": "a:1",
        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
    }
    assert b["image"] == "b:2" and b["env"] == [
        {"name": "X", "value": "1"},
        {"name": "Y", "value": "2"},
    ]
    assert live["spec"]["containers"][1]["image"] == "b:1"  # the input is not changed


def test_strategic_merge_directives() -> None:
    live = {
        "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
    }
    p = {
        "metadata": {"labels": {"a": None}, "$deleteFromPrimitiveList/finalizers": ["x"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
            "containers": [{"name": "b", "$patch": "delete"}],
        },
    }
    out = patch.strategic_merge(live, p, POD)
    assert out["metadata"] == {"labels": {"b": "2"}, "finalizers": ["y"]}
    assert out["spec"]["containers"] == [{"name": "c"}, {"name": "a"}]
    replaced = patch.strategic_merge(
        live, {"spec": {"containers": [{"name": "z"}, {"$patch": "replace"}]}}, POD
    )
    assert replaced["spec"]["containers"] == [{"name": "z"}]
    # Lists without a merge key are replaced, as in a merge patch.
    out = patch.strategic_merge({"spec": {"args": ["1"]}}, {"spec": {"args": ["2"]}}, None)
    assert out == {"spec": {"args": ["2"]}}
    with pytest.raises(patch.PatchError, match='merge key "name"'):
        patch.strategic_merge(live, {"spec": {"containers": [{"image": "x"}]}}, POD)


def test_service_ports_merge_by_port() -> None:
    from hakube.api.v1 import core_pb2

    live = {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    p = {"spec": {"ports": [{"port": 80, "name": "web"}, {"port": 443}]}}
    out = patch.strategic_merge(live, p, core_pb2.Service.DESCRIPTOR)
    assert out["spec"]["ports"] == [
        {"port": 80, "targetPort": 8080, "name": "web"},
        {"port": 443},
    ]


def test_merge_patch_and_json_patch() -> None:
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert patch.merge_patch(doc, {"a": {"b": None, "c": [3]}, "e": 2}) == {
        "a": {"c": [3]},
        "d": 1,
        "e": 2,
    }
    ops = [
        {"op": "add", "path": "/a/c/-", "value": 3},
        {"op": "replace", "path": "/d", "value": 5},
        {"op": "move", "from": "/d", "path": "/f"},
        {"op": "copy", "from": "/f", "path": "/g"},
        {"op": "remove", "path": "/a/b"},
        {"op": "test", "path": "/g", "value": 5},
    ]
    assert patch.json_patch(doc, ops) == {"a": {"c": [1, 2, 3]}, "f": 5, "g": 5}
    with pytest.raises(patch.PatchError) as err:
        patch.json_patch(doc, [{"op": "test", "path": "/d", "value": 2}])
    assert err.value.test_failed
    with pytest.raises(patch.PatchError, match="does not exist"):
        patch.json_patch(doc, [{"op": "remove", "path": "/nope"}])


def test_paths_name_kinds_namespaces_and_subresources() -> None:
    r = routes.parse("/apis/apps/v1/namespaces/prod/deployments/web/scale")
    assert r is not None and r.kind is kinds.BY_NAME["Deployment"]
    assert (r.namespace, r.name, r.subresource) == ("prod", "web", "scale")
    r = routes.parse("/api/v1/namespaces/prod")
    assert r is not None and r.kind is kinds.BY_NAME["Namespace"] and r.name == "prod"
    r = routes.parse("/api/v1/namespaces/prod/status")
    assert r is not None and (r.name, r.subresource) == ("prod", "status")
    r = routes.parse("/api/v1/pods")
    assert r is not None and (r.namespace, r.name) == ("", "")
    assert routes.parse("/apis/apps/v1/nosuch") is not None
    assert routes.parse("/apis/apps/v1/nosuch").kind is None  # type: ignore[union-attr]
    assert routes.parse("/healthz") is None
    apps = routes.resource_list("apps/v1")
    assert apps is not None
    names = {r["name"] for r in apps["resources"]}
    assert {"deployments", "deployments/status", "deployments/scale"} <= names
    assert routes.resource_list("nosuch/v1") is None


def test_errors_become_status_objects_with_kubernetes_codes() -> None:
    doc = status.of_error(
        errors.Invalid('Pod "p" is invalid: spec.containers[0].image: required value'),
        kind="pods",
        name="p",
    )
    assert (doc["code"], doc["reason"]) == (422, "Invalid")
    assert (doc["details"]["kind"], doc["details"]["name"]) == ("Pod", "p")
    assert doc["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "required value",
            "field": "spec.containers[0].image",
        }
    ]
    # A refused create (the path names no object): the message names it.
    doc = status.of_error(
        errors.Invalid('Deployment "web" is invalid: spec.replicas: must be >= 0'),
        kind="deployments",
        group="apps",
    )
    assert doc["details"]["name"] == "web" and doc["details"]["kind"] == "Deployment"
    cases = {
        errors.NotFound("x"): (404, "NotFound"),
        errors.AlreadyExists("x"): (409, "AlreadyExists"),
        errors.Conflict("x"): (409, "Conflict"),
        errors.Gone("x"): (410, "Expired"),
        errors.Forbidden("x"): (403, "Forbidden"),
        errors.Unauthenticated("x"): (401, "Unauthorized"),
        errors.TooLarge("x"): (413, "RequestEntityTooLarge"),
        errors.Unavailable("x"): (503, "ServiceUnavailable"),
        status.BadRequest("x"): (400, "BadRequest"),
    }
    for exc, want in cases.items():
        doc = status.of_error(exc)
        assert (doc["code"], doc["reason"]) == want and doc["kind"] == "Status"


def test_tables_use_hakubectls_columns() -> None:
    d = workloads_pb2.Deployment()
    d.metadata.name = "web"
    d.spec.replicas = 3
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.spec.containers.add(name="c", image="img")
    t = codec.table_doc(kinds.BY_NAME["Deployment"], [d])
    names = [(c["name"], c["priority"]) for c in t["columnDefinitions"]]
    assert names[:5] == [("Name", 0), ("Ready", 0), ("Up-To-Date", 0), ("Available", 0), ("Age", 0)]
    assert ("Images", 1) in names
    assert t["rows"][0]["cells"][:2] == ["web", "0/3"]
    assert t["rows"][0]["object"]["metadata"]["name"] == "web"
    doc = codec.object_doc(d)
    assert doc["status"] == {}  # Kubernetes always writes it


def test_a_streamed_table_is_one_document_of_every_page() -> None:
    pods = []
    for i in range(5):
        p = pod_pb2.Pod()
        p.metadata.name, p.metadata.namespace, p.metadata.generation = f"p{i}", "ns", 2
        p.metadata.labels["app"] = "x"
        pods.append(p)
    kind = kinds.BY_NAME["Pod"]

    async def pages() -> AsyncIterator[list[Message]]:
        for page in ([pods[0], pods[1]], [], pods[2:]):
            yield page

    async def collect() -> bytes:
        head = codec.table_head(kind, resource_version="7")
        return b"".join([c async for c in codec.table_stream(kind, head, pages(), "Metadata")])

    doc = json.loads(asyncio.run(collect()))
    assert doc == {**codec.table_doc(kind, pods, resource_version="7"), "rows": doc["rows"]}
    assert doc["rows"] == codec.table_doc(kind, pods)["rows"]
    assert [r["cells"][0] for r in doc["rows"]] == ["p0", "p1", "p2", "p3", "p4"]
    # The fast metadata copy is the general conversion's result.
    assert codec.meta_doc(pods[0].metadata) == convert.to_dict(pods[0].metadata)
    assert doc["rows"][0]["object"]["metadata"]["generation"] == 2


def test_openapi_describes_kinds_and_merge_keys() -> None:
    docs = openapi.Documents()
    index = json.loads(docs.get("/openapi/v3") or b"{}")
    assert "apis/apps/v1" in index["paths"] and "api/v1" in index["paths"]
    apps = json.loads(docs.get("/openapi/v3/apis/apps/v1") or b"{}")
    schemas = apps["components"]["schemas"]
    deploy = schemas[openapi.schema_name(DEPLOY)]
    assert deploy["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "version": "v1", "kind": "Deployment"}
    ]
    spec = schemas[openapi.schema_name(pod_pb2.PodSpec.DESCRIPTOR)]
    assert spec["properties"]["containers"]["x-kubernetes-patch-merge-key"] == "name"
    patch_op = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch_op["parameters"])


def test_a_protobuf_access_review_is_read() -> None:
    def field(n: int, data: bytes) -> bytes:
        return bytes([(n << 3) | 2, len(data)]) + data

    attrs = (
        field(1, b"default") + field(2, b"create") + field(3, b"apps") + field(5, b"deployments")
    )
    raw = field(2, field(1, attrs))
    body = (
        k8sproto.MAGIC
        + field(1, field(1, b"authorization.k8s.io/v1") + field(2, b"SelfSubjectAccessReview"))
        + field(2, raw)
    )
    version, kind, inner = k8sproto.unwrap(body)
    assert (version, kind) == ("authorization.k8s.io/v1", "SelfSubjectAccessReview")
    review = k8sproto.self_subject_access_review(inner)
    assert review["spec"] == {
        "resourceAttributes": {
            "namespace": "default",
            "verb": "create",
            "group": "apps",
            "resource": "deployments",
        }
    }
    with pytest.raises(k8sproto.ProtoError):
        k8sproto.unwrap(b"{}")


def _pb(n: int, data: bytes | int) -> bytes:
    """One protobuf field: a varint for an int, length-delimited for bytes."""

    def varint(v: int) -> bytes:
        out = b""
        while True:
            out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
            v >>= 7
            if not v:
                return out

    if isinstance(data, int):
        return varint(n << 3) + varint(data % (1 << 64))
    return varint((n << 3) | 2) + varint(len(data)) + data


def _k8s_body(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _pb(1, api_version.encode()) + _pb(2, kind.encode())
    return k8sproto.MAGIC + _pb(1, type_meta) + _pb(2, raw)


def test_protobuf_objects_decode_to_manifests_and_unread_fields_are_refused() -> None:
    meta = _pb(1, b"cfg") + _pb(2, b"") + _pb(8, b"") + _pb(11, _pb(1, b"app") + _pb(2, b"x"))
    secret = _pb(1, meta) + _pb(2, _pb(1, b"pw") + _pb(2, b"\x00hunter2")) + _pb(3, b"Opaque")
    doc = k8sproto.decode("Secret", "v1", k8sproto.unwrap(_k8s_body("v1", "Secret", secret))[2])
    assert doc == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cfg", "labels": {"app": "x"}},
        "data": {"pw": "AGh1bnRlcjI="},
        "type": "Opaque",
    }
    port = _pb(3, 80) + _pb(4, _pb(1, 0) + _pb(2, 8080))
    named = _pb(3, 81) + _pb(4, _pb(1, 1) + _pb(3, b"http"))
    svc = _pb(1, meta) + _pb(2, _pb(1, port) + _pb(1, named)) + _pb(3, _pb(1, b""))
    spec = k8sproto.decode("Service", "v1", svc)["spec"]
    assert spec["ports"] == [{"port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "http"}]
    # A pointer field keeps its zero (replicas: 0); a negative int32 is a 10-byte varint.
    deploy = _pb(1, meta) + _pb(2, _pb(1, 0) + _pb(5, -1))
    assert k8sproto.decode("Deployment", "apps/v1", deploy)["spec"] == {
        "replicas": 0,
        "minReadySeconds": -1,
    }
    # Every type named in the table exists.
    for fields in protoschema.MESSAGES.values():
        for _, typ in fields.values():
            name = typ.lstrip("*^")
            assert name in protoschema.MESSAGES or name in (
                "s",
                "y",
                "i",
                "i!",
                "b",
                "b!",
                "t",
                "io",
                "x",
                "{s}",
                "{y}",
                "{q}",
            ), typ
    # A set field hakube does not read is refused by number; an empty one is a Go zero value.
    with pytest.raises(k8sproto.Unmapped, match=r"ConfigMap.metadata: field 17 is set"):
        k8sproto.decode("ConfigMap", "v1", _pb(1, meta + _pb(17, _pb(1, b"kubectl"))))
    assert k8sproto.decode("ConfigMap", "v1", _pb(1, meta + _pb(4, b""))) is not None
    with pytest.raises(k8sproto.ProtoError):
        k8sproto.decode("ConfigMap", "v1", _pb(1, b"\x0a\x05ab"))


def test_a_protobuf_token_request_decodes_by_the_table() -> None:
    """``kubectl create token`` sends its TokenRequest as protobuf; an expiry of 0 is kept
    (a pointer in Go), and an empty bound reference is left out."""
    ref = _pb(1, b"Pod") + _pb(2, b"v1") + _pb(3, b"web") + _pb(4, b"u-1")
    spec = _pb(1, b"aud1") + _pb(1, b"aud2") + _pb(3, ref) + _pb(4, 600)
    raw = k8sproto.unwrap(_k8s_body("authentication.k8s.io/v1", "TokenRequest", _pb(2, spec)))[2]
    doc = k8sproto.decode("TokenRequest", "authentication.k8s.io/v1", raw)
    assert doc["spec"] == {
        "audiences": ["aud1", "aud2"],
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u-1"},
        "expirationSeconds": 600,
    }
    zero = k8sproto.decode("TokenRequest", "authentication.k8s.io/v1", _pb(2, _pb(4, 0)))
    assert zero["spec"] == {"expirationSeconds": 0}


def test_a_renewed_master_certificate_serves_new_connections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The REST door re-reads its certificate for each new handshake (in the SNI callback,
    which runs for clients that send no server name too, as kubectl dialling an IP)."""
    import asyncio
    import os
    import ssl

    from cryptography import x509

    from hakube.apiserver.rest.http import HttpServer, Response
    from hakube.local.cluster import cluster_pki
    from hakube.testing import pki as testpki

    p = cluster_pki(str(tmp_path / "pki"), {"m1": ["127.0.0.1"]}, testpki.shared())
    admin = p.user_tls("admin")

    async def handler(req: object) -> Response:
        return Response(200, b"{}")

    async def serial(port: int) -> int:
        ctx = ssl.create_default_context(cafile=admin.ca)
        ctx.check_hostname = False
        ctx.load_cert_chain(admin.cert, admin.key)
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        w.write(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await r.read()).startswith(b"HTTP/1.1 200")
        w.close()
        return int(x509.load_der_x509_certificate(der).serial_number)

    async def main() -> tuple[int, int]:
        srv = HttpServer(handler, p.master_tls("m1"))
        port = await srv.start("127.0.0.1:0")
        try:
            before = await serial(port)
            stat = os.stat(p.master_cert("m1"))
            p.issue_master(p.load_ca(), "m1", ["127.0.0.1"])
            os.utime(p.master_cert("m1"), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
            return before, await serial(port)
        finally:
            await srv.stop()

    before, after = asyncio.run(main())
    assert before != after


def test_server_side_apply_bodies_refuse_yaml_aliases() -> None:
    """A few hundred bytes of nested aliases would expand to gigabytes once copied."""
    import yaml

    from hakube.apiserver.rest.bodies import NoAliasLoader

    assert yaml.load(b"a: 1\nb: [x]", Loader=NoAliasLoader) == {"a": 1, "b": ["x"]}  # noqa: S506
    bomb = b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(yaml.YAMLError, match="aliases are not accepted"):
        yaml.load(bomb, Loader=NoAliasLoader)  # noqa: S506


def _apply(live: dict[str, Any], applied: dict[str, Any], manager: str, force: bool = False) -> Any:
    merged = patch.strategic_merge(live, applied, DEPLOY)
    return fieldowners.apply(live, applied, merged, DEPLOY, manager, force=force)


def test_server_side_apply_owns_fields_per_manager() -> None:
    def config(replicas: int | None, *containers: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "template": {
                "spec": {"containers": [{"name": c, "image": f"{c}:1"} for c in containers]}
            }
        }
        if replicas is not None:
            spec["replicas"] = replicas
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": spec,
        }

    live = _apply({}, config(2, "web", "side"), "a")
    assert ("spec", "template", "spec", "containers", 'k:{"name":"side"}', "image") in (
        fieldowners.owners(live)["a"]
    )
    # Another manager changing a field "a" set: refused, naming both ...
    with pytest.raises(fieldowners.ConflictError, match=r'conflict with "a": \.spec\.replicas'):
        _apply(live, config(3), "b")
    # ... the same value is shared ownership, not a conflict ...
    assert _apply(live, config(2), "b")["spec"]["replicas"] == 2
    # ... and force moves the field to the new manager.
    live = _apply(live, config(3), "b", force=True)
    assert live["spec"]["replicas"] == 3 and ("spec", "replicas") in fieldowners.owners(live)["b"]
    # "a" drops the side container and replicas: the container goes; replicas ("b"'s) stays.
    live = _apply(live, config(None, "web"), "a")
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert live["spec"]["replicas"] == 3
    conflict = 'conflict with "a": .spec.template.spec.containers[name="web"].image'
    with pytest.raises(fieldowners.ConflictError) as exc:
        _apply(
            live,
            {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}},
            "c",
        )
    assert conflict in str(exc.value)
