"""OpenAPI v3 documents generated from hakube's own protobuf descriptors.

``kubectl explain`` reads the schemas (types and fields of each kind, found by their
``x-kubernetes-group-version-kind``); ``kubectl apply --validate=strict`` looks for the
``fieldValidation`` parameter on each kind's PATCH operation to learn that the server checks
fields itself (hakube always refuses unknown fields). The patch merge keys of
hakube.apiserver.rest.patch are advertised as ``x-kubernetes-patch-merge-key``, so clients
computing strategic merge patches agree with the server applying them.

The documents are built once per master on first use (they depend only on the code) and
served as bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from hakube.api.kinds import Kind
from hakube.apiserver.rest import patch, routes

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_INT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
    FieldDescriptor.TYPE_ENUM: {"type": "string"},
}
_PREFIX = "io.hakube.api."


def schema_name(desc: Any) -> str:
    return _PREFIX + desc.full_name.removeprefix("hakube.api.")


def _field_schema(desc: Any, fd: FieldDescriptor, todo: list[Any]) -> dict[str, Any]:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        sub: Any = fd.message_type
        if sub.GetOptions().map_entry:
            value = sub.fields_by_name["value"]
            return {"type": "object", "additionalProperties": _field_schema(sub, value, todo)}
        if sub.full_name == "google.protobuf.Value":
            one: dict[str, Any] = {"x-kubernetes-int-or-string": True}
        elif sub.full_name.startswith("google.protobuf."):
            one = {"type": "object"}
        else:
            todo.append(sub)
            one = {"allOf": [{"$ref": f"#/components/schemas/{schema_name(sub)}"}]}
    else:
        one = dict(_SCALARS.get(fd.type, {"type": "string"}))
    if fd.is_repeated:
        out: dict[str, Any] = {"type": "array", "items": one}
        key = patch.merge_key(desc, fd.json_name)
        if key is not None:
            out["x-kubernetes-patch-merge-key"] = key
            out["x-kubernetes-patch-strategy"] = "merge"
            out["x-kubernetes-list-type"] = "map"
            out["x-kubernetes-list-map-keys"] = [key]
        return out
    return one


def schemas(kinds: list[Kind]) -> dict[str, Any]:
    """Component schemas of ``kinds`` and every message they reach."""
    out: dict[str, Any] = {}
    todo: list[Any] = [k.message.DESCRIPTOR for k in kinds]
    gvk = {k.message.DESCRIPTOR.full_name: k for k in kinds}
    while todo:
        desc = todo.pop()
        name = schema_name(desc)
        if name in out:
            continue
        props = {fd.json_name: _field_schema(desc, fd, todo) for fd in desc.fields}
        doc: dict[str, Any] = {"type": "object", "properties": props}
        kind = gvk.get(desc.full_name)
        if kind is not None:
            doc["description"] = (
                f"{kind.name}: a {'namespaced' if kind.namespaced else 'cluster-scoped'} "
                f"object of hakube's API (served as {kind.api_version})."
            )
            doc["x-kubernetes-group-version-kind"] = [_gvk(kind)]
            for f in ("apiVersion", "kind"):
                if f in props:
                    props[f] = {"type": "string"}
        out[name] = doc
    return out


def _gvk(kind: Kind) -> dict[str, str]:
    group, _, version = kind.api_version.rpartition("/")
    return {"group": group, "version": version, "kind": kind.name}


def _paths(kinds: list[Kind]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in kinds:
        base = "/api/v1" if k.group == "" else f"/apis/{k.api_version}"
        scope = "/namespaces/{namespace}" if k.namespaced else ""
        ref = {"$ref": f"#/components/schemas/{schema_name(k.message.DESCRIPTOR)}"}
        body = {"content": {"application/json": {"schema": ref}}}
        ok = {"200": body}
        field_validation = {
            "name": "fieldValidation",
            "in": "query",
            "description": "Strict only: unknown fields are always refused.",
            "schema": {"type": "string", "uniqueItems": True},
        }
        ext = {"x-kubernetes-group-version-kind": _gvk(k)}
        out[f"{base}{scope}/{k.plural}"] = {
            "get": {"operationId": f"list{k.name}", "responses": ok, **ext},
            "post": {
                "operationId": f"create{k.name}",
                "parameters": [field_validation],
                "requestBody": body,
                "responses": {"201": body},
                **ext,
            },
        }
        out[f"{base}{scope}/{k.plural}/{{name}}"] = {
            "get": {"operationId": f"read{k.name}", "responses": ok, **ext},
            "put": {
                "operationId": f"replace{k.name}",
                "parameters": [field_validation],
                "requestBody": body,
                "responses": ok,
                **ext,
            },
            "patch": {
                "operationId": f"patch{k.name}",
                "parameters": [field_validation],
                "responses": ok,
                **ext,
            },
            "delete": {"operationId": f"delete{k.name}", "responses": ok, **ext},
        }
    return out


class Documents:
    """``/openapi/v3`` (the index) and ``/openapi/v3/<group version path>``, built lazily."""

    def __init__(self) -> None:
        self._docs: dict[str, bytes] | None = None

    def _build(self) -> dict[str, bytes]:
        docs: dict[str, bytes] = {}
        index: dict[str, Any] = {}
        for gv, kinds in routes.group_versions().items():
            rel = "api/v1" if gv == "v1" else f"apis/{gv}"
            doc = {
                "openapi": "3.0.0",
                "info": {"title": "hakube", "version": routes.VERSION_INFO["gitVersion"]},
                "paths": _paths(kinds),
                "components": {"schemas": schemas(kinds)},
            }
            data = json.dumps(doc, separators=(",", ":")).encode()
            digest = hashlib.sha256(data).hexdigest()[:32].upper()
            docs[f"/openapi/v3/{rel}"] = data
            index[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={digest}"}
        docs["/openapi/v3"] = json.dumps({"paths": index}).encode()
        return docs

    def get(self, path: str) -> bytes | None:
        if self._docs is None:
            self._docs = self._build()
        return self._docs.get(path.rstrip("/"))
