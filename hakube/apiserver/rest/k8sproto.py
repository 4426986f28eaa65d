"""Just enough of Kubernetes' protobuf encoding to read the bodies Go clients send that way.

kubectl's typed clients send some requests as ``application/vnd.kubernetes.protobuf`` and do
not retry with JSON when refused; ``kubectl auth can-i`` is one (a SelfSubjectAccessReview).
The format is the magic ``k8s\\0`` and a ``runtime.Unknown`` envelope whose ``raw`` field
holds the object's own protobuf message. This module reads the protobuf wire format
generically (no generated code) and picks the fields it needs by number, as Kubernetes'
published ``generated.proto`` files number them.
"""

from __future__ import annotations

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


def token_request(raw: bytes) -> dict[str, object]:
    """An authentication.k8s.io/v1 TokenRequest (spec=2: audiences=1, boundObjectRef=3 with
    kind, apiVersion, name, uid = 1-4, expirationSeconds=4) as JSON (``kubectl create token``)."""
    spec = fields(_bytes(fields(raw), 2))
    out: dict[str, object] = {
        "audiences": [v.decode("utf-8", "replace") for v in spec.get(1, []) if isinstance(v, bytes)]
    }
    seconds = spec.get(4, [None])[-1]
    if isinstance(seconds, int):
        out["expirationSeconds"] = seconds
    if 3 in spec:
        ref = fields(_bytes(spec, 3))
        names = ("kind", "apiVersion", "name", "uid")
        out["boundObjectRef"] = {
            n: _str(ref, i + 1) for i, n in enumerate(names) if _str(ref, i + 1)
        }
    return {"spec": out}
