"""Create-or-update from a manifest, as ``kubectl apply`` does it.

Re-applying a manifest must not undo what others did to the object since (the scheduler's
``spec.nodeName``, a ``scale``, a label added by hand), yet removing a field from the manifest
must remove it from the object. Like kubectl, apply keeps the manifest it last applied in the
``kubectl.kubernetes.io/last-applied-configuration`` annotation and merges three ways:

- start from the live object;
- drop every field the last applied manifest had and the new one no longer has;
- set every field of the new manifest (maps merge key by key; lists are replaced whole - there
  are no strategic-merge keys here).

The update is a compare-and-swap on the live object's resourceVersion and is redone from a fresh
read on Conflict. Whether anything changes is asked of the server (a dry-run update of the merge
with the old annotation: defaulting happens there), so applying ``hakubectl get -o yaml`` output,
which spells out every default, reports ``unchanged`` rather than rewriting the annotation.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from hakube.api import convert
from hakube.api.kinds import Kind
from hakube.client import errors
from hakube.client.base import ObjectClient

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)
"""Metadata the server owns; ignored in manifests (resourceVersion becomes a precondition)."""
CREATED, CONFIGURED, UNCHANGED = "created", "configured", "unchanged"


@dataclass
class ApplyResult:
    object: Any
    """The object as stored after the apply."""
    action: str
    """``created``, ``configured`` or ``unchanged``."""
    kind: Kind


def strip_manifest(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A manifest without status and server-owned metadata, and its resourceVersion (kept as
    a precondition; "" if none)."""
    out = copy.deepcopy(doc)
    out.pop("status", None)
    meta = out.get("metadata")
    rv = ""
    if isinstance(meta, dict):
        rv = str(meta.get("resourceVersion") or "")
        for key in SERVER_METADATA:
            meta.pop(key, None)
        ann = meta.get("annotations")
        if isinstance(ann, dict):
            ann.pop(LAST_APPLIED, None)
            if not ann:
                meta.pop("annotations")
    return out, rv


def three_way(
    live: dict[str, Any], last: dict[str, Any] | None, desired: dict[str, Any]
) -> dict[str, Any]:
    """``live`` with fields removed from ``last`` to ``desired`` dropped and ``desired`` set."""
    out = dict(live)
    if last is not None:
        for key in last:
            if key not in desired:
                out.pop(key, None)
    for key, value in desired.items():
        prev_last = last.get(key) if isinstance(last, dict) else None
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = three_way(
                out[key], prev_last if isinstance(prev_last, dict) else None, value
            )
        else:
            out[key] = copy.deepcopy(value)
    return out


def _as_dict(obj: Message | dict[str, Any]) -> dict[str, Any]:
    if isinstance(obj, Message):
        doc = convert.to_dict(obj)
        doc.setdefault("kind", type(obj).__name__)  # message classes are named after kinds
        return doc
    return obj


def _annotations(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc.setdefault("metadata", {})
    return meta.setdefault("annotations", {})  # type: ignore[no-any-return]


def apply(
    client: ObjectClient, obj: Message | dict[str, Any], *, timeout: float | None = None
) -> ApplyResult:
    """Create ``obj`` or bring the live object in line with it; see the module docstring.
    Raises ManifestError (hakube.api.convert) for a manifest that does not convert."""
    doc = _as_dict(obj)
    kind = convert.kind_of(doc)
    desired, want_rv = strip_manifest(doc)
    desired["apiVersion"] = doc.get("apiVersion", kind.api_version)
    convert.from_dict(desired)  # unknown fields and bad values fail before any request
    meta = desired.setdefault("metadata", {})
    name = meta.get("name")
    if not name:
        raise convert.ManifestError(
            f"{kind.name}: apply needs metadata.name (generateName only works with create)"
        )
    if kind.namespaced:
        meta["namespace"] = meta.get("namespace") or client.settings.namespace
    ns = meta.get("namespace", "")
    annotation = json.dumps(desired, sort_keys=True, separators=(",", ":"))
    for _ in range(10):
        try:
            live = client.get(kind, name, namespace=ns, timeout=timeout)
        except errors.NotFound:
            body = copy.deepcopy(desired)
            _annotations(body)[LAST_APPLIED] = annotation
            try:
                created = client.create(convert.from_dict(body), timeout=timeout)
            except errors.AlreadyExists:
                continue  # someone created it meanwhile: merge into theirs
            return ApplyResult(created, CREATED, kind)
        live_rv = live.metadata.resource_version
        if want_rv and want_rv != live_rv:
            raise errors.Conflict(
                f'{kind.plural} "{name}": the manifest is for resourceVersion {want_rv} but the '
                f"object is at {live_rv}; remove metadata.resourceVersion or fetch it again"
            )
        current = convert.to_dict(live)
        current.pop("status", None)
        old_annotation = live.metadata.annotations.get(LAST_APPLIED)
        last = None
        if old_annotation:
            try:
                last, _ = strip_manifest(json.loads(old_annotation))
            except ValueError:
                last = None
        merged = three_way(current, last, desired)
        merged["metadata"]["resourceVersion"] = live_rv
        probe = copy.deepcopy(merged)
        if old_annotation is None:
            _annotations(probe).pop(LAST_APPLIED, None)
        else:
            _annotations(probe)[LAST_APPLIED] = old_annotation
        try:
            would = client.update(convert.from_dict(probe), dry_run=True, timeout=timeout)
            if convert.to_dict(would) == convert.to_dict(live):  # same content, not bytes
                return ApplyResult(live, UNCHANGED, kind)
            _annotations(merged)[LAST_APPLIED] = annotation
            updated = client.update(convert.from_dict(merged), timeout=timeout)
        except errors.Conflict:
            if want_rv:
                raise
            continue
        except errors.NotFound:
            continue  # deleted meanwhile: create it
        return ApplyResult(updated, CONFIGURED, kind)
    raise errors.Conflict(
        f'{kind.plural} "{name}": changed by others on every attempt; apply again'
    )
