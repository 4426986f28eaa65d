"""Kubernetes-style dicts (from YAML/JSON manifests) to typed messages and back.

protobuf's JSON mapping already matches Kubernetes' names (the proto sets json_name where
Kubernetes deviates from camelCase), but two details differ and are fixed here: int64 fields come
out as strings, and an int-or-string ``Value`` comes out as a float. Parse errors are rewritten into
one line naming the object and the field path.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from hakube.api.kinds import BY_NAME, Kind


class ManifestError(ValueError):
    """A manifest that does not convert; the message names the object and the field."""


_NO_FIELD = re.compile(r'has no field named "([^"]+)" at "([^"]+)"')
_BAD_VALUE = re.compile(r'Failed to parse (\w+) field: (.*)')


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
    name = _name_of(doc)
    body = dict(doc)
    body["apiVersion"] = kind.api_version
    msg = kind.message()
    try:
        json_format.ParseDict(body, msg)
    except json_format.ParseError as exc:
        raise ManifestError(f"{kind.name} {name}: {_explain(str(exc), kind.message)}") from exc
    return msg


def _name_of(doc: dict[str, Any]) -> str:
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
        return f"invalid value for field \"{'.'.join(path)}\": {rest}"
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


_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def _is_repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


def _num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
