"""hakube's wire messages as Kubernetes JSON: objects, lists, watch events and Tables.

Objects convert with hakube.api.convert (the manifest mapping hakubectl uses, so JSON field
names are Kubernetes'); Table rows use the columns of hakube.api.columns, the same hakubectl
prints. ``Accept`` picks the form: ``as=Table`` (kubectl get) or plain JSON.
"""

from __future__ import annotations

import json
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


def object_doc(msg: Message) -> dict[str, Any]:
    return convert.to_dict(msg)


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
    columns = [("Name", lambda o: o.metadata.name, False), *cols.columns(kind)]
    doc: dict[str, Any] = {
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
            for i, (h, _, wide) in enumerate(columns)
        ]
        if with_columns
        else [],
        "rows": [
            {"cells": [fn(o) for _, fn, _ in columns], "object": _row_object(o, include_object)}
            for o in objs
        ],
    }
    return doc


def _title(header: str) -> str:
    """kubectl upper-cases the column names itself; the API gives them in title case."""
    return header if header in ("IP", "Name") else header.title()


def _row_object(msg: Message, include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    doc = object_doc(msg)
    if include == "Object":
        return doc
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": doc.get("metadata", {}),
    }


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
