"""Building responses from stored bytes without parsing them.

The store keeps each object serialized without ``metadata.resourceVersion``. Protobuf merges a
repeated occurrence of an embedded message field into the first one, so appending
``metadata { resource_version: "N" }`` (field 3, then field 5) to the stored bytes yields the object
with its revision set. Wrapping in ``Object`` (the kind's oneof field) and in ``WatchEvent`` or
``ListResponse`` is likewise just a tag and a length. Reads and watch fan-out therefore never
decode objects, which is what lets one master serve 30k pods and 100 watchers on 2 cores.
"""

from __future__ import annotations

from hakube.api.kinds import Kind

_META_FIELD = 3  # every kind message has `ObjectMeta metadata = 3`
_RV_FIELD = 5  # ObjectMeta.resource_version


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# Every response goes through these helpers, so the common small varints are precomputed.
_SMALL = [_varint_slow(n) for n in range(16384)]


def _varint(n: int) -> bytes:
    return _SMALL[n] if n < 16384 else _varint_slow(n)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _rv_meta(rev: int) -> bytes:
    """``metadata { resource_version: "rev" }`` as field 3, ready to append."""
    digits = str(rev).encode()
    meta = _RV_TAG + _SMALL[len(digits)] + digits
    return _META_TAG + _SMALL[len(meta)] + meta


_RV_TAG = _varint_slow((_RV_FIELD << 3) | 2)
_META_TAG = _varint_slow((_META_FIELD << 3) | 2)
_OBJECT_TAGS: dict[str, bytes] = {}


def with_revision(value: bytes, rev: int) -> bytes:
    """Stored object bytes with metadata.resourceVersion set to ``rev``."""
    return value + _rv_meta(rev)


def object_bytes(kind: Kind, value: bytes, rev: int) -> bytes:
    """A serialized ``Object`` envelope holding the stored object at revision ``rev``."""
    tag = _OBJECT_TAGS.get(kind.oneof)
    if tag is None:
        tag = _OBJECT_TAGS[kind.oneof] = _varint_slow((kind.field_number << 3) | 2)
    body = value + _rv_meta(rev)
    return tag + _varint(len(body)) + body


_EVENT_TYPES: dict[str, bytes] = {}


def watch_event_bytes(type_: str, obj: bytes, rev: int) -> bytes:
    """A serialized ``WatchEvent`` (type=1, object=2, resource_version=3)."""
    head = _EVENT_TYPES.get(type_)
    if head is None:
        head = _EVENT_TYPES[type_] = _len_field(1, type_.encode())
    return head + _len_field(2, obj) + _len_field(3, str(rev).encode())


def list_response_bytes(items: list[bytes], rev: int, cont: str, remaining: int | None) -> bytes:
    """A serialized ``ListResponse`` from serialized ``Object`` items."""
    parts = [_len_field(1, item) for item in items]
    parts.append(_len_field(2, str(rev).encode()))
    if cont:
        parts.append(_len_field(3, cont.encode()))
    if remaining is not None:
        parts.append(_varint((4 << 3) | 0) + _varint(remaining))
    return b"".join(parts)
