"""Just enough of Kubernetes' protobuf encoding to read the bodies Go clients send that way.

kubectl's typed clients send some requests as ``application/vnd.kubernetes.protobuf`` and do
not retry with JSON when refused: ``kubectl auth can-i`` (a SelfSubjectAccessReview) and the
generators of ``kubectl create deployment/configmap/secret/service/namespace/job/...``.
The format is the magic ``k8s\\0`` and a ``runtime.Unknown`` envelope whose ``raw`` field
holds the object's own protobuf message. This module reads the protobuf wire format
generically (no generated code) and picks the fields it needs by number, as Kubernetes'
published ``generated.proto`` files number them; ``decode`` turns the objects the
generators send into the manifest dicts of the JSON path, by the table in ``protoschema``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from hakube.apiserver.rest import protoschema

MAGIC = b"k8s\x00"


class ProtoError(ValueError):
    """Bytes that are not a well-formed message."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ProtoError("truncated varint")
        b = data[i]
        i += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, i
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """A message's fields by number: varints as ints, length-delimited ones as bytes."""
    out: dict[int, list[bytes | int]] = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        value: bytes | int
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ProtoError("truncated field")
            value, i = data[i : i + size], i + size
        elif wire == 1:
            value, i = int.from_bytes(data[i : i + 8], "little"), i + 8
        elif wire == 5:
            value, i = int.from_bytes(data[i : i + 4], "little"), i + 4
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _bytes(f: dict[int, list[bytes | int]], n: int) -> bytes:
    v = f.get(n, [b""])[-1]
    return v if isinstance(v, bytes) else b""


def _str(f: dict[int, list[bytes | int]], n: int) -> str:
    return _bytes(f, n).decode("utf-8", "replace")


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of a Kubernetes protobuf body."""
    if not body.startswith(MAGIC):
        raise ProtoError("not a Kubernetes protobuf body (no k8s magic)")
    unknown = fields(body[len(MAGIC) :])
    type_meta = fields(_bytes(unknown, 1))
    return _str(type_meta, 1), _str(type_meta, 2), _bytes(unknown, 2)


_RESOURCE_ATTRIBUTES = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
"""authorization.k8s.io/v1 ResourceAttributes, fields 1-7 in this order."""


def self_subject_access_review(raw: bytes) -> dict[str, object]:
    """A SelfSubjectAccessReview (metadata=1, spec=2; spec.resourceAttributes=1) as JSON."""
    spec = fields(_bytes(fields(raw), 2))
    attrs = fields(_bytes(spec, 1))
    ra = {name: _str(attrs, i + 1) for i, name in enumerate(_RESOURCE_ATTRIBUTES)}
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": {"resourceAttributes": {k: v for k, v in ra.items() if v}},
    }


class Unmapped(ValueError):
    """A body that sets a field hakube does not read (refused, never silently dropped)."""


def decode(kind: str, api_version: str, raw: bytes) -> dict[str, Any]:
    """A Kubernetes object's protobuf message as the JSON manifest dict the JSON path reads,
    driven by ``protoschema.MESSAGES``; Unmapped names a set field that is not read."""
    if kind not in protoschema.OBJECTS:
        raise Unmapped(f"{kind} bodies are not read as protobuf")
    doc = _message(kind, raw, kind)
    return {"apiVersion": api_version, "kind": kind, **doc}


def _message(name: str, data: bytes, path: str) -> dict[str, Any]:
    schema = protoschema.MESSAGES[name]
    out: dict[str, Any] = {}
    for number, values in fields(data).items():
        spec = schema.get(number)
        if spec is None:
            if any(not _empty(v) for v in values):
                raise Unmapped(f"{path}: field {number} is set but not read by hakube")
            continue
        key, typ = spec
        where = f"{path}.{key}" if key else path
        if typ.startswith("^"):
            out.update(_message(typ[1:], _as_bytes(values[-1], where), where))
            continue
        value = _value(typ, values, where)
        if value is not None:
            out[key] = value
    return out


def _value(typ: str, values: list[bytes | int], where: str) -> Any:
    """One field's JSON value; None when it is the unset (zero) value of a non-pointer."""
    last = values[-1]
    if typ == "x":
        return None
    if typ in ("s", "y"):
        raw = _as_bytes(last, where)
        if not raw:
            return None
        return base64.b64encode(raw).decode() if typ == "y" else _text(raw, where)
    if typ in ("i", "i!"):
        n = _as_int(last, where)
        return None if n == 0 and typ == "i" else n
    if typ in ("b", "b!"):
        flag = bool(_as_int(last, where))
        return None if not flag and typ == "b" else flag
    if typ == "*s":
        return [_text(_as_bytes(v, where), where) for v in values] or None
    if typ.startswith("{"):
        return _map(typ, values, where) or None
    if typ == "t":
        t = fields(_as_bytes(last, where))
        seconds = _as_int(t.get(1, [0])[-1], where)
        if not seconds:
            return None
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if typ == "io":
        f = fields(_as_bytes(last, where))
        if _as_int(f.get(1, [0])[-1], where) == 1:
            return _text(_as_bytes(f.get(3, [b""])[-1], where), where) or None
        return _as_int(f.get(2, [0])[-1], where) or None
    if typ.startswith("*"):
        return [
            _message(typ[1:], _as_bytes(v, where), f"{where}[{i}]") for i, v in enumerate(values)
        ]
    doc = _message(typ, _as_bytes(last, where), where)
    return doc or None


def _map(typ: str, entries: list[bytes | int], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries:
        f = fields(_as_bytes(entry, where))
        key = _text(_as_bytes(f.get(1, [b""])[-1], where), where)
        raw = _as_bytes(f.get(2, [b""])[-1], where)
        if typ == "{y}":
            out[key] = base64.b64encode(raw).decode()
        elif typ == "{q}":  # a Quantity message: its string is field 1
            out[key] = _text(_as_bytes(fields(raw).get(1, [b""])[-1], where), where)
        else:
            out[key] = _text(raw, where)
    return out


def _empty(v: bytes | int) -> bool:
    """The encoding of a Go zero value: 0, an empty string, or a message of empty fields
    (Go's protobuf writes every non-pointer struct, so ``status: {}`` arrives as bytes; a
    string whose bytes happen to read as such a message, e.g. "\\n\\0", would pass too)."""
    if isinstance(v, int):
        return v == 0
    if not v:
        return True
    try:
        return all(_empty(x) for xs in fields(v).values() for x in xs)
    except ProtoError:
        return False


def _as_bytes(v: bytes | int, where: str) -> bytes:
    if not isinstance(v, bytes):
        raise ProtoError(f"{where}: a number where a length-delimited field belongs")
    return v


def _as_int(v: bytes | int, where: str) -> int:
    if not isinstance(v, int):
        raise ProtoError(f"{where}: a length-delimited field where a number belongs")
    return v - (1 << 64) if v >= 1 << 63 else v


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise ProtoError(f"{where}: not UTF-8 text") from exc
