"""Kubernetes-style dicts (from YAML/JSON manifests) to typed messages and back.

protobuf's JSON mapping already matches Kubernetes' names (the proto sets json_name where
Kubernetes deviates from camelCase), but two details differ and are fixed here: int64 fields come
out as strings, and an int-or-string ``Value`` comes out as a float. Parse errors are rewritten into
one line naming the object and the field path.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from hakube.api.kinds import BY_NAME, Kind


class ManifestError(ValueError):
    """A manifest that does not convert; the message names the object and the field."""


_NO_FIELD = re.compile(r'has no field named "([^"]+)" at "([^"]+)"')
_BAD_VALUE = re.compile(r"Failed to parse (\w+) field: (.*)")


def kind_of(doc: dict[str, Any]) -> Kind:
    """The registered kind of a manifest, checking apiVersion."""
    kind_name = doc.get("kind")
    if not isinstance(kind_name, str) or not kind_name:
        raise ManifestError("manifest has no kind")
    kind = BY_NAME.get(kind_name)
    if kind is None:
        raise ManifestError(f'unknown kind "{kind_name}"')
    api_version = doc.get("apiVersion", kind.api_version)
    if api_version not in (kind.api_version, *kind.api_versions):
        raise ManifestError(
            f'{kind.name}: apiVersion "{api_version}" is not served (use "{kind.api_version}")'
        )
    return kind


def from_dict(doc: dict[str, Any]) -> Message:
    """Convert one manifest to its typed message; ManifestError names the offending field."""
    if not isinstance(doc, dict):
        raise ManifestError(f"a manifest must be a mapping, not {type(doc).__name__}")
    kind = kind_of(doc)
    name = name_of(doc)
    body = dict(doc)
    body["apiVersion"] = kind.api_version
    msg = kind.message()
    try:
        body = _prepare(body, msg.DESCRIPTOR, "")
        json_format.ParseDict(body, msg)
    except json_format.ParseError as exc:
        raise ManifestError(f"{kind.name} {name}: {_explain(str(exc), kind.message)}") from exc
    return msg


_QUANTITY_FIELDS = {
    ("ResourceRequirements", "limits"),
    ("ResourceRequirements", "requests"),
    ("ResourceRequirementsPVC", "limits"),
    ("ResourceRequirementsPVC", "requests"),
    ("PersistentVolumeClaimStatus", "capacity"),
    ("NodeStatus", "capacity"),
    ("NodeStatus", "allocatable"),
    ("EmptyDirVolumeSource", "sizeLimit"),
    ("MetricTarget", "averageValue"),
    ("MetricTarget", "value"),
    ("MetricValueStatus", "averageValue"),
    ("MetricValueStatus", "value"),
}
"""Fields holding Kubernetes quantities, by message name and JSON name: YAML writes ``cpu: 2``
as a number, which Kubernetes accepts, while the typed message holds the quantity's text."""

_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


# What ``_prepare`` does with one field: the JSON/proto name it is found under, the action, and
# the message type to descend into (for MESSAGE, LIST and MAP_MESSAGE).
_QTY, _QTY_MAP, _B64, _B64_MAP, _MESSAGE, _LIST, _MAP_MESSAGE = range(7)
_Plan = dict[str, tuple[int, Any]]
_plans: dict[str, _Plan] = {}


def _plan(desc: Any) -> _Plan:
    """The fields of ``desc`` that can hold a quantity or bytes, at any depth, and what to do
    with each: computed once per message type, so a manifest's walk skips every subtree that
    has none (probes, env, metadata, ...)."""
    plan = _plans.get(desc.full_name)
    if plan is not None:
        return plan
    plan = _plans[desc.full_name] = {}  # in place before descending (hakube's types do not
    # recurse; one that did would see itself as having nothing to prepare)
    for fd in desc.fields:
        step: tuple[int, Any] | None = None
        if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            vfd = fd.message_type.fields_by_name["value"]
            if (desc.name, fd.json_name) in _QUANTITY_FIELDS:
                step = (_QTY_MAP, None)
            elif vfd.type == FieldDescriptor.TYPE_BYTES:
                step = (_B64_MAP, None)
            elif vfd.type == FieldDescriptor.TYPE_MESSAGE and _plan(vfd.message_type):
                step = (_MAP_MESSAGE, vfd.message_type)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            sub = fd.message_type
            if not sub.full_name.startswith("google.protobuf.") and _plan(sub):
                step = (_LIST if _is_repeated(fd) else _MESSAGE, sub)
        elif fd.type == FieldDescriptor.TYPE_BYTES and not _is_repeated(fd):
            step = (_B64, None)
        elif (desc.name, fd.json_name) in _QUANTITY_FIELDS:
            step = (_QTY, None)
        if step is not None:
            plan[fd.json_name] = step
            plan[fd.name] = step
    return plan


def _prepare(value: Any, desc: Any, path: str) -> Any:
    """The manifest with numbers in quantity fields turned into their text, after checking that
    bytes fields hold standard base64 (protobuf's parser would also take URL-safe characters and
    drop what it does not know, storing bytes the author never wrote). Dicts are copied only
    where something changes."""
    if not isinstance(value, dict):
        return value
    plan = _plan(desc)
    out = value
    for key, (action, sub) in plan.items():
        item = value.get(key)
        if item is None:
            continue
        new = item
        if action == _MESSAGE:
            new = _prepare(item, sub, _at(path, key))
        elif action == _LIST:
            if isinstance(item, list):
                where = _at(path, key)
                parts = [_prepare(v, sub, f"{where}[{i}]") for i, v in enumerate(item)]
                if any(p is not v for p, v in zip(parts, item, strict=True)):
                    new = parts
            else:
                new = _prepare(item, sub, _at(path, key))
        elif action == _QTY:
            new = _quantity_text(item)
        elif action == _B64:
            _check_base64(item, _at(path, key))
        elif isinstance(item, dict):
            if action == _QTY_MAP:
                if any(_quantity_text(v) is not v for v in item.values()):
                    new = {k: _quantity_text(v) for k, v in item.items()}
            elif action == _B64_MAP:
                for k, v in item.items():
                    _check_base64(v, f"{_at(path, key)}[{k}]")
            else:  # _MAP_MESSAGE
                where = _at(path, key)
                parts_map = {k: _prepare(v, sub, f"{where}[{k}]") for k, v in item.items()}
                if any(parts_map[k] is not v for k, v in item.items()):
                    new = parts_map
        if new is not item:
            if out is value:
                out = dict(value)
            out[key] = new
    return out


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _quantity_text(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _check_base64(v: Any, where: str) -> None:
    if not isinstance(v, str):
        return
    ok = len(v) % 4 == 0 and bool(_BASE64.match(v))
    if ok:
        try:
            base64.b64decode(v, validate=True)
        except binascii.Error:
            ok = False
    if not ok:
        raise json_format.ParseError(f"{where}: illegal base64 data")


def name_of(doc: dict[str, Any]) -> str:
    """The manifest's name for messages: metadata.name, its generateName, or <unnamed>."""
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        return str(meta.get("name") or meta.get("generateName") or "<unnamed>")
    return "<unnamed>"


def _explain(text: str, cls: type[Message]) -> str:
    m = _NO_FIELD.search(text)
    if m:
        field, where = m.group(1), m.group(2)
        prefix = where.split(".", 1)[1] if "." in where else ""
        full = f"{prefix}.{field}" if prefix else field
        return f'unknown field "{full}"'
    # Nested "Failed to parse X field: Failed to parse Y field: reason" -> path X.Y: reason.
    path: list[str] = []
    rest = text
    while True:
        m2 = _BAD_VALUE.match(rest)
        if not m2:
            break
        path.append(m2.group(1))
        rest = m2.group(2)
    rest = rest.split("\n")[0].rstrip(".")
    if path:
        return f'invalid value for field "{".".join(path)}": {rest}'
    return rest


def to_dict(msg: Message) -> dict[str, Any]:
    """A message as a Kubernetes-style dict (ints as ints, empty fields left out)."""
    out = json_format.MessageToDict(msg)
    _fix(msg, out)
    return out


def _fix(msg: Message, out: dict[str, Any]) -> None:
    for fd, value in msg.ListFields():
        key = fd.json_name
        if key not in out:
            continue
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            assert fd.message_type is not None
            if fd.message_type.full_name == "google.protobuf.Value":
                out[key] = [_num(v) for v in out[key]] if _is_repeated(fd) else _num(out[key])
            elif fd.message_type.GetOptions().map_entry:
                continue
            elif _is_repeated(fd):
                for sub, subout in zip(value, out[key], strict=True):
                    _fix(sub, subout)
            else:
                _fix(value, out[key])
        elif fd.type in _INT64:
            out[key] = [int(v) for v in out[key]] if _is_repeated(fd) else int(out[key])


_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def _is_repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


def _num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
