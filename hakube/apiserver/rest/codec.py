"""hakube's wire messages as Kubernetes JSON: objects, lists, watch events and Tables.

Objects convert with hakube.api.convert (the manifest mapping hakubectl uses, so JSON field
names are Kubernetes'); Table rows use the columns of hakube.api.columns, the same hakubectl
prints. ``Accept`` picks the form: ``as=Table`` (kubectl get) or plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import Message

from hakube.api import columns as cols
from hakube.api import convert, kinds
from hakube.api.kinds import Kind
from hakube.api.v1 import api_pb2


def wants_table(accept: str) -> bool:
    """Whether the client asked for a meta.k8s.io Table (it lists it first)."""
    first = accept.split(",")[0].replace(" ", "")
    return "as=Table" in first


def object_msg(raw: bytes | api_pb2.Object) -> Message:
    """The typed object inside a serialized (or parsed) ``Object`` envelope."""
    obj = raw if isinstance(raw, api_pb2.Object) else api_pb2.Object.FromString(raw)
    return kinds.unwrap(obj)[1]


REQUIRED: dict[str, dict[str, Any]] = {
    "ContainerStatus": {"name": "", "ready": False, "restartCount": 0, "image": "", "imageID": ""},
    "ContainerStateTerminated": {"exitCode": 0},
    "Condition": {"type": "", "status": ""},
    "PodCondition": {"type": "", "status": ""},
    "ContainerPort": {"containerPort": 0},
    "ServicePort": {"port": 0},
    "EndpointPort": {"port": 0},
    "NodeAddress": {"type": "", "address": ""},
    "Taint": {"key": "", "effect": ""},
    "OwnerReference": {"apiVersion": "", "kind": "", "name": "", "uid": ""},
    "LabelSelectorRequirement": {"key": "", "operator": ""},
    "PolicyRule": {"verbs": []},
    "Subject": {"kind": "", "name": ""},
    "RoleRef": {"apiGroup": "", "kind": "", "name": ""},
    "ReplicaSetStatus": {"replicas": 0},
    "StatefulSetStatus": {"replicas": 0, "availableReplicas": 0},
    "DaemonSetStatus": {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    },
    "HorizontalPodAutoscalerStatus": {"desiredReplicas": 0},
    "PodIP": {"ip": ""},
    "NodeSystemInfo": {
        k: ""
        for k in (
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeletVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
        )
    },
}
"""Fields Kubernetes always writes (no ``omitempty`` in its Go types), by hakube message:
protobuf's JSON leaves zero values out, and typed clients (the Python client's models)
refuse an object without them."""


def object_doc(msg: Message) -> dict[str, Any]:
    doc = convert.to_dict(msg)
    _fill(msg.DESCRIPTOR, doc)
    # Kubernetes always writes a kind's status, empty or not; clients read it unguarded.
    if "status" not in doc and "status" in msg.DESCRIPTOR.fields_by_name:
        doc["status"] = {}
    return doc


def _fill(desc: Any, doc: dict[str, Any]) -> None:
    required, children = _plan(desc)
    for key, default in required.items():
        if key not in doc:
            doc[key] = default if not isinstance(default, list) else []
    for key, sub in children:
        value = doc.get(key)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                _fill(sub, item)


_PLANS: dict[str, tuple[dict[str, Any], list[tuple[str, Any]]]] = {}


def _plan(desc: Any) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """What ``_fill`` does at a message: its required fields, and the message fields that can
    lead to more (computed once per message type; most subtrees need nothing)."""
    plan = _PLANS.get(desc.full_name)
    if plan is None:
        _PLANS[desc.full_name] = ({}, [])  # a recursive message type refers to itself
        children = []
        for fd in desc.fields:
            sub = fd.message_type
            if sub is None or sub.GetOptions().map_entry:
                continue
            if sub.full_name.startswith("google.protobuf."):
                continue
            required, grandchildren = _plan(sub)
            if required or grandchildren:
                children.append((fd.json_name, sub))
        plan = _PLANS[desc.full_name] = (REQUIRED.get(desc.name, {}), children)
    return plan


def list_doc(kind: Kind, resp: api_pb2.ListResponse) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": resp.resource_version}
    if getattr(resp, "continue"):
        meta["continue"] = getattr(resp, "continue")
    if resp.HasField("remaining_item_count"):
        meta["remainingItemCount"] = resp.remaining_item_count
    return {
        "kind": f"{kind.name}List",
        "apiVersion": kind.api_version,
        "metadata": meta,
        "items": [object_doc(object_msg(o)) for o in resp.items],
    }


def table_doc(
    kind: Kind,
    objs: list[Message],
    *,
    resource_version: str = "",
    cont: str = "",
    with_columns: bool = True,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of ``objs``; wide-only columns get priority 1 (``-o wide``)."""
    doc = table_head(kind, resource_version=resource_version, cont=cont, with_columns=with_columns)
    doc["rows"] = table_rows(kind, objs, include_object)
    return doc


def table_head(
    kind: Kind, *, resource_version: str = "", cont: str = "", with_columns: bool = True
) -> dict[str, Any]:
    """A Table without its rows: the metadata and the column definitions."""
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version, **({"continue": cont} if cont else {})},
        "columnDefinitions": [
            {
                "name": _title(h),
                "type": "string",
                "format": "name" if i == 0 else "",
                "description": "",
                "priority": 1 if wide else 0,
            }
            for i, (h, _, wide) in enumerate(_columns(kind))
        ]
        if with_columns
        else [],
    }


def table_rows(kind: Kind, objs: list[Message], include_object: str) -> list[dict[str, Any]]:
    columns = [fn for _, fn, _ in _columns(kind)]
    return [
        {"cells": [fn(o) for fn in columns], "object": _row_object(o, include_object)} for o in objs
    ]


async def table_stream(
    kind: Kind, head: dict[str, Any], pages: AsyncIterator[list[Message]], include_object: str
) -> AsyncIterator[bytes]:
    """A Table as chunks: the head, then the rows of each page as it comes, then the end.

    A list of 10,000 pods is never one document in memory, and the client reads the first
    rows while later pages are still being read from the store. An error after the first
    chunk ends the stream without the closing bracket: the client fails to decode it rather
    than taking a partial list for the whole.
    """
    first = dumps({**head, "rows": []})
    yield first[:-2]  # up to and including '"rows":['
    sep = b""
    async for objs in pages:
        if objs:
            rows = dumps(table_rows(kind, objs, include_object))
            yield sep + rows[1:-1]
            sep = b","
    yield b"]}"


def _columns(kind: Kind) -> list[cols.Column]:
    return [("Name", lambda o: o.metadata.name, False), *cols.columns(kind)]


def _title(header: str) -> str:
    """kubectl upper-cases the column names itself; the API gives them in title case."""
    return header if header in ("IP", "Name") else header.title()


def _row_object(msg: Message, include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return object_doc(msg)
    # Only the metadata is converted (kubectl get -A over thousands of pods asks for this).
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta_doc(msg.metadata),  # type: ignore[attr-defined]
    }


def meta_doc(meta: Message) -> dict[str, Any]:
    """``convert.to_dict`` of an ObjectMeta, at a fraction of its cost: the scalar, map and
    string-list fields are copied as they are (int64 as Python ints, as ``to_dict`` gives
    them); only message fields (owner references) take the general path."""
    out: dict[str, Any] = {}
    for fd, value in meta.ListFields():
        sub = fd.message_type
        if sub is None:
            out[fd.json_name] = list(value) if fd.is_repeated else value
        elif sub.GetOptions().map_entry:
            out[fd.json_name] = dict(value)
        elif fd.is_repeated:
            out[fd.json_name] = [convert.to_dict(v) for v in value]
        else:
            out[fd.json_name] = convert.to_dict(value)
    return out


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
